#!/bin/bash
set -euo pipefail
# A per-container cookie secret (phpMyAdmin needs 32 bytes).
[[ -s /etc/phpmyadmin/blowfish_secret ]] || head -c 24 /dev/urandom | base64 > /etc/phpmyadmin/blowfish_secret
chown root:www-data /etc/phpmyadmin/blowfish_secret && chmod 640 /etc/phpmyadmin/blowfish_secret
set +u; source /etc/apache2/envvars; set -u
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"
exec "$@"
