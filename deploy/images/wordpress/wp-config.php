<?php
// Configured from the environment, like the official image's wp-config-docker.php: NAME, or NAME_FILE
// naming a file that holds the value (a mounted secret; WORDPRESS_DB_PASSWORD_FILE), as getenv_docker() does.
function shophosting_env($name, $default = '') {
    $file = getenv($name . '_FILE');
    if ($file !== false && $file !== '') {
        return rtrim(file_get_contents($file), "\r\n");
    }
    $value = getenv($name);
    return ($value === false || $value === '') ? $default : $value;
}
define('DB_NAME', shophosting_env('WORDPRESS_DB_NAME', 'wordpress'));
define('DB_USER', shophosting_env('WORDPRESS_DB_USER', 'wordpress'));
define('DB_PASSWORD', shophosting_env('WORDPRESS_DB_PASSWORD'));
define('DB_HOST', shophosting_env('WORDPRESS_DB_HOST', 'db'));
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
$table_prefix = 'wp_';
// The platform's extra lines (the stack's WORDPRESS_CONFIG_EXTRA: the object cache, the URLs and the
// hardening every store gets), evaluated as the official image's wp-config-docker.php does, so a store
// is configured the same whichever image it runs.
$shophosting_config_extra = shophosting_env('WORDPRESS_CONFIG_EXTRA');
if ($shophosting_config_extra !== '') {
    eval($shophosting_config_extra);
}
// What the extra lines leave undefined, from this image's own variables.
if (shophosting_env('WORDPRESS_URL')) {
    defined('WP_HOME') || define('WP_HOME', shophosting_env('WORDPRESS_URL'));
    defined('WP_SITEURL') || define('WP_SITEURL', shophosting_env('WORDPRESS_URL'));
}
// The object cache drop-in (wp-content/object-cache.php) reads these; without a host it uses memory only.
if (shophosting_env('WORDPRESS_REDIS_HOST') && !defined('WP_REDIS_HOST')) {
    define('WP_REDIS_HOST', shophosting_env('WORDPRESS_REDIS_HOST'));
    define('WP_REDIS_DATABASE', (int) shophosting_env('WORDPRESS_REDIS_DATABASE', '0'));
    define('WP_REDIS_PREFIX', shophosting_env('WORDPRESS_REDIS_PREFIX'));
}
define('FS_METHOD', 'direct');
if (isset($_SERVER['HTTP_X_FORWARDED_PROTO']) && $_SERVER['HTTP_X_FORWARDED_PROTO'] === 'https') {
    $_SERVER['HTTPS'] = 'on';
}
require __DIR__ . '/wp-content/shophosting-salts.php';
if (!defined('ABSPATH')) {
    define('ABSPATH', __DIR__ . '/');
}
require_once ABSPATH . 'wp-settings.php';
