<?php
// Installs WordPress with its own wp_install() (no wp-cli here), then activates WooCommerce. With
// SHOPHOSTING_REQUIRE_WOOCOMMERCE=1 (production) a missing plugin or a failed activation exits 1 with the
// reason on stderr, which the provisioning job records as its error. Idempotent: an installed site is left
// alone. Inputs come from the environment (docker exec -e), never from a shell string. Prints no secret.
define('WP_INSTALLING', true);
$url = getenv('WORDPRESS_URL') ?: 'http://localhost';
$_SERVER['HTTP_HOST'] = parse_url($url, PHP_URL_HOST);
$_SERVER['REQUEST_URI'] = '/';
require '/var/www/html/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

// wp_install() e-mails the admin; the platform sends its own mail, and the image has no sendmail.
add_filter('pre_wp_mail', '__return_true');
if (is_blog_installed()) {
    echo "WordPress is already installed\n";
} else {
    $result = wp_install(getenv('WP_TITLE'), getenv('WP_ADMIN_USER'), getenv('WP_ADMIN_EMAIL'), true, '',
                         wp_slash(getenv('WP_ADMIN_PASSWORD')));
    if (is_wp_error($result)) {
        fwrite(STDERR, "wp_install failed: " . $result->get_error_message() . "\n");
        exit(1);
    }
    update_option('blogdescription', 'Powered by ShopHosting');
    echo "WordPress installed\n";
}
// Whether this store must have WooCommerce is the platform's decision (the stack sets it from the image's
// settings), never a guess from what the image carries: a production store without its shop is a failed install.
$woocommerce_required = getenv('SHOPHOSTING_REQUIRE_WOOCOMMERCE') === '1';
if (!file_exists(WP_PLUGIN_DIR . '/woocommerce/woocommerce.php')) {
    if ($woocommerce_required) {
        fwrite(STDERR, "WooCommerce is required but not in this image (no " . WP_PLUGIN_DIR . "/woocommerce/woocommerce.php)\n");
        exit(1);
    }
    echo "WooCommerce is not in this image\n";
    exit(0);
}
$activated = activate_plugin('woocommerce/woocommerce.php');
if (is_wp_error($activated)) {
    fwrite(STDERR, "WooCommerce activation failed: " . wp_strip_all_tags($activated->get_error_message()) . "\n");
    exit($woocommerce_required ? 1 : 0);
}
echo "WooCommerce active\n";
