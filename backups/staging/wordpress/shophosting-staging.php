<?php
/*
 * Plugin Name: ShopHosting staging copy
 * Description: On a staging copy, mail is captured instead of sent, and payment gateways run in test mode.
 *
 * Put into a staging copy's wp-content/mu-plugins by the platform (staging/services/copy.py) and loaded by the
 * image's shophosting-store-mu-plugins.php. It acts only where the container says it is a staging copy
 * (SHOPHOSTING_STAGING=1, set by the stack for staging stores only), so a copy of this file that reached a live
 * store's files would do nothing there; a push removes it from the live store all the same.
 */

if (getenv('SHOPHOSTING_STAGING') !== '1') {
    return;
}

// Mail: every message is kept in a table of the staging database and never sent (WordPress 5.7+'s
// pre_wp_mail short-circuits wp_mail; a non-null answer means "handled").
function shophosting_staging_mail_table() {
    global $wpdb;
    return $wpdb->prefix . 'shophosting_captured_mail';
}

add_filter('pre_wp_mail', function ($short_circuit, $atts) {
    global $wpdb;
    $table = shophosting_staging_mail_table();
    $wpdb->query(
        "CREATE TABLE IF NOT EXISTS `$table` (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, captured_at DATETIME NOT NULL,"
        . " recipients TEXT NOT NULL, subject TEXT NOT NULL, message LONGTEXT NOT NULL, headers TEXT NOT NULL)"
        . " " . $wpdb->get_charset_collate()
    );
    $to = is_array($atts['to']) ? implode(', ', $atts['to']) : (string) $atts['to'];
    $headers = is_array($atts['headers']) ? implode("\n", $atts['headers']) : (string) $atts['headers'];
    $wpdb->insert($table, [
        'captured_at' => current_time('mysql', true),
        'recipients' => $to,
        'subject' => (string) $atts['subject'],
        'message' => (string) $atts['message'],
        'headers' => $headers,
    ]);
    return true;
}, PHP_INT_MAX, 2);

// Payments: the gateways' own test switches, applied when their settings are read, so the staging database
// keeps the live values (a database push does not carry a forced test mode to the live store). Gateways with
// no test switch of their own (cash on delivery, bank transfer) take no money anyway.
$shophosting_test_modes = [
    'woocommerce_stripe_settings' => ['testmode' => 'yes'],                 // WooCommerce Stripe Gateway
    'woocommerce_woocommerce_payments_settings' => ['test_mode' => 'yes'],  // WooPayments
    'woocommerce_paypal_settings' => ['testmode' => 'yes'],                 // PayPal Standard (sandbox)
    'woocommerce_ppcp-gateway_settings' => ['sandbox_on' => true],          // PayPal Payments
    'woocommerce_square_credit_card_settings' => ['environment' => 'sandbox'],  // Square
];
foreach ($shophosting_test_modes as $option => $forced) {
    add_filter("option_$option", function ($value) use ($forced) {
        return is_array($value) ? array_merge($value, $forced) : $value;
    }, PHP_INT_MAX);
}

// Search engines: never index a staging copy (nginx sends X-Robots-Tag too; this covers the pages' own meta).
add_filter('pre_option_blog_public', function () {
    return '0';
});
