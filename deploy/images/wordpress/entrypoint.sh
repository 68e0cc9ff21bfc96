#!/bin/bash
set -euo pipefail
# Salts live in the wp-content volume: made once per store, kept across restarts and image updates.
SALTS=/var/www/html/wp-content/shophosting-salts.php
if [[ ! -f "$SALTS" ]]; then
    php -r '$k=["AUTH_KEY","SECURE_AUTH_KEY","LOGGED_IN_KEY","NONCE_KEY","AUTH_SALT","SECURE_AUTH_SALT","LOGGED_IN_SALT","NONCE_SALT"];
        $o="<?php\n"; foreach ($k as $n) { $o.="define(\"$n\", \"".bin2hex(random_bytes(32))."\");\n"; } echo $o;' > "$SALTS.tmp"
    mv "$SALTS.tmp" "$SALTS"   # atomic: WordPress never reads a half-written file
    chown www-data:www-data "$SALTS"
fi
# The object cache drop-in (Redis, falling back to memory) comes with the image: put in place on every start,
# so an image update reaches stores whose wp-content volume already exists, unless the store's wp-content
# holds another drop-in, which stays.
DROPIN=/var/www/html/wp-content/object-cache.php
if [[ ! -e "$DROPIN" ]] || grep -q 'ShopHosting object cache' "$DROPIN"; then
    cp /usr/local/share/shophosting/object-cache.php "$DROPIN.tmp"
    mv "$DROPIN.tmp" "$DROPIN"   # atomic, as the salts: a request never includes half a file
fi
# Apache's children read the container's environment through PHP's getenv().
set +u; source /etc/apache2/envvars; set -u
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"
exec "$@"
