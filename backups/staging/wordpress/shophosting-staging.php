<?php
/*
 * Plugin Name: ShopHosting staging copy
 * Description: On a staging copy, mail is captured instead of sent (and shown under Tools → Captured mail), and payment
 *   gateways run in test mode.
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

function shophosting_staging_mail_table_exists() {
    global $wpdb;
    $table = shophosting_staging_mail_table();
    return $wpdb->get_var($wpdb->prepare('SHOW TABLES LIKE %s', $wpdb->esc_like($table))) === $table;
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

// The captured mail, shown in the copy's own wp-admin (Tools → Captured mail, administrators only), newest first.
// Here rather than on the platform's staging page: the platform's web tier never reaches a store's database or
// its containers, and the copy's WordPress already has the table, its own login and its own administrators.
// The staging page links straight to this page (SHOPHOSTING_CAPTURED_MAIL_PAGE is the `page` it links to).
const SHOPHOSTING_CAPTURED_MAIL_PAGE = 'shophosting-captured-mail';
const SHOPHOSTING_CAPTURED_MAIL_PER_PAGE = 20;

add_action('admin_menu', function () {
    add_management_page(
        'Captured mail', 'Captured mail', 'manage_options', SHOPHOSTING_CAPTURED_MAIL_PAGE, 'shophosting_staging_mail_page'
    );
});

function shophosting_staging_mail_page() {
    global $wpdb;
    if (!current_user_can('manage_options')) {  // add_management_page checks it too; a page that lists mail checks again
        wp_die(esc_html__('Sorry, you are not allowed to access this page.'), 403);
    }
    $table = shophosting_staging_mail_table();
    $exists = shophosting_staging_mail_table_exists();
    $total = $exists ? (int) $wpdb->get_var("SELECT COUNT(*) FROM `$table`") : 0;
    $pages = max(1, (int) ceil($total / SHOPHOSTING_CAPTURED_MAIL_PER_PAGE));
    $current = min($pages, max(1, isset($_GET['paged']) ? absint($_GET['paged']) : 1));
    $rows = $exists ? $wpdb->get_results($wpdb->prepare(
        "SELECT id, captured_at, recipients, subject, message, headers FROM `$table` ORDER BY id DESC LIMIT %d OFFSET %d",
        SHOPHOSTING_CAPTURED_MAIL_PER_PAGE,
        ($current - 1) * SHOPHOSTING_CAPTURED_MAIL_PER_PAGE
    )) : [];
    echo '<div class="wrap" id="shophosting-captured-mail"><h1>Captured mail</h1>';
    echo '<p>This is a staging copy: the mail it sends is kept here and never delivered. The newest comes first.</p>';
    if (isset($_GET['cleared'])) {
        echo '<div class="notice notice-success"><p>The captured mail was cleared.</p></div>';
    }
    if (!$rows) {
        echo '<p class="shophosting-captured-mail-empty">No mail has been captured.</p></div>';
        return;
    }
    echo '<p>' . esc_html(sprintf(_n('%d message', '%d messages', $total), $total)) . '</p>';
    echo '<table class="widefat striped"><thead><tr><th>Captured (UTC)</th><th>To</th><th>Subject</th><th>Message</th></tr></thead><tbody>';
    foreach ($rows as $row) {
        echo '<tr class="shophosting-captured-message"><td>' . esc_html($row->captured_at) . '</td>';
        echo '<td>' . esc_html($row->recipients) . '</td>';
        echo '<td class="subject">' . esc_html($row->subject) . '</td>';
        echo '<td><details><summary>Show</summary><pre style="white-space: pre-wrap">';
        echo esc_html(($row->headers !== '' ? $row->headers . "\n\n" : '') . $row->message);
        echo '</pre></details></td></tr>';
    }
    echo '</tbody></table>';
    $links = paginate_links([
        'base' => add_query_arg('paged', '%#%', remove_query_arg('cleared')),
        'format' => '',
        'current' => $current,
        'total' => $pages,
    ]);
    if ($links) {
        echo '<div class="tablenav"><div class="tablenav-pages">' . $links . '</div></div>';  // paginate_links escapes its URLs
    }
    echo '<form method="post" action="' . esc_url(admin_url('admin-post.php')) . '">';
    echo '<input type="hidden" name="action" value="shophosting_captured_mail_clear">';
    wp_nonce_field('shophosting_captured_mail_clear');
    submit_button('Clear the captured mail', 'delete', 'submit', false);
    echo '</form></div>';
}

// Clearing: a POST to admin-post.php by an administrator, with the page's nonce (check_admin_referer answers
// anything else with WordPress's "link expired" page, 403).
add_action('admin_post_shophosting_captured_mail_clear', function () {
    if (!current_user_can('manage_options')) {
        wp_die(esc_html__('Sorry, you are not allowed to access this page.'), 403);
    }
    check_admin_referer('shophosting_captured_mail_clear');
    global $wpdb;
    if (shophosting_staging_mail_table_exists()) {
        $table = shophosting_staging_mail_table();
        $wpdb->query("DELETE FROM `$table`");
    }
    wp_safe_redirect(add_query_arg(['page' => SHOPHOSTING_CAPTURED_MAIL_PAGE, 'cleared' => 1], admin_url('tools.php')));
    exit;
});

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
