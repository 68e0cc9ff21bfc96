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
# Apache's children read the container's environment through PHP's getenv().
set +u; source /etc/apache2/envvars; set -u
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"
exec "$@"
