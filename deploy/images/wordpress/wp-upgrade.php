<?php
// Runs WordPress's own database upgrade, wp_upgrade() (what wp-admin/upgrade.php runs), after a store's
// containers were recreated from a new image: the store's database is brought to the new core's version.
// Idempotent: a database already at this version is left as it is. Prints the versions before and after;
// exits 1 with the reason on stderr when WordPress is not installed or the database did not reach the new
// version, which fails the update (and puts the store back on its old image and data).
define('WP_INSTALLING', true);
$url = getenv('WORDPRESS_URL') ?: 'http://localhost';
$_SERVER['HTTP_HOST'] = parse_url($url, PHP_URL_HOST);
$_SERVER['REQUEST_URI'] = '/';
require '/var/www/html/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

if (!is_blog_installed()) {
    fwrite(STDERR, "WordPress is not installed in this database\n");
    exit(1);
}
global $wp_db_version, $wp_version, $wpdb;
$before = (int) get_option('db_version');
wp_upgrade();
wp_cache_delete('alloptions', 'options');
wp_cache_delete('db_version', 'options');
$after = (int) get_option('db_version');
if ($after !== (int) $wp_db_version) {
    $error = $wpdb->last_error ? ": " . $wpdb->last_error : "";
    fwrite(STDERR, "the database is at version $after, not $wp_db_version (WordPress $wp_version)$error\n");
    exit(1);
}
echo $before === $after
    ? "database already at version $after (WordPress $wp_version)\n"
    : "database upgraded from version $before to $after (WordPress $wp_version)\n";
