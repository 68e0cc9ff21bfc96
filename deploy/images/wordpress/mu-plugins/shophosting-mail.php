<?php
/*
 * Plugin Name: ShopHosting mail relay
 * Description: Sends the store's mail through the platform's SMTP relay, from the store's own domain.
 *
 * Part of the image (WPMU_PLUGIN_DIR, set by the platform's stack), configured by the container's environment:
 * SHOPHOSTING_SMTP_HOST, _PORT, _SECURITY (none | starttls | tls), _USER and the password as a file
 * (SHOPHOSTING_SMTP_PASSWORD_FILE, a mounted secret, never in the environment), SHOPHOSTING_MAIL_FROM.
 * Without SHOPHOSTING_SMTP_HOST it does nothing.
 */

// NAME, or NAME_FILE naming a file that holds it (the official images' *_FILE convention).
function shophosting_mail_setting($name) {
    $file = getenv($name . '_FILE');
    if ($file !== false && $file !== '') {
        $value = @file_get_contents($file);
        return $value === false ? '' : rtrim($value, "\r\n");
    }
    $value = getenv($name);
    return $value === false ? '' : $value;
}

function shophosting_mail_domain($address) {
    $at = strrpos((string) $address, '@');
    return $at === false ? '' : strtolower(substr($address, $at + 1));
}

if (shophosting_mail_setting('SHOPHOSTING_SMTP_HOST') !== '') {
    add_action('phpmailer_init', 'shophosting_mail_relay');
    // Last, after WooCommerce's and any plugin's choice: only an address of the store's mail domain leaves
    // through the relay as it is, since the relay signs (DKIM) for that domain and its SPF record names the
    // relay; any other (a merchant's gmail.com address, WordPress's default wordpress@) becomes the store's,
    // and a merchant's own address stays reachable as Reply-To.
    add_filter('wp_mail_from', 'shophosting_mail_from', PHP_INT_MAX);
    add_filter('wp_mail_from_name', 'shophosting_mail_from_name', PHP_INT_MAX);
    add_action('wp_mail_failed', 'shophosting_mail_failed');
}

function shophosting_mail_relay($phpmailer) {
    $security = shophosting_mail_setting('SHOPHOSTING_SMTP_SECURITY');
    $phpmailer->isSMTP();
    $phpmailer->Host = shophosting_mail_setting('SHOPHOSTING_SMTP_HOST');
    $phpmailer->Port = (int) shophosting_mail_setting('SHOPHOSTING_SMTP_PORT');
    // PHPMailer's names: 'ssl' is TLS from the first byte (SMTPS), 'tls' is STARTTLS, required.
    $phpmailer->SMTPSecure = ['tls' => 'ssl', 'starttls' => 'tls'][$security] ?? '';
    // `none` means none: PHPMailer would otherwise start TLS whenever the relay offers it.
    $phpmailer->SMTPAutoTLS = $security !== 'none';
    $user = shophosting_mail_setting('SHOPHOSTING_SMTP_USER');
    $phpmailer->SMTPAuth = $user !== '';
    $phpmailer->Username = $user;
    $phpmailer->Password = $user !== '' ? shophosting_mail_setting('SHOPHOSTING_SMTP_PASSWORD') : '';
    if (!empty($GLOBALS['shophosting_mail_reply_to']) && !$phpmailer->getReplyToAddresses()) {
        $phpmailer->addReplyTo($GLOBALS['shophosting_mail_reply_to']);
    }
    $GLOBALS['shophosting_mail_reply_to'] = '';
}

function shophosting_mail_from($from) {
    $store_from = shophosting_mail_setting('SHOPHOSTING_MAIL_FROM');
    if ($store_from === '') {
        return $from;
    }
    $given = strtolower((string) $from);
    $wordpress_default = strpos($given, 'wordpress@') === 0;
    if (!$wordpress_default && shophosting_mail_domain($given) === shophosting_mail_domain($store_from)) {
        return $from;
    }
    $GLOBALS['shophosting_mail_reply_to'] = ($wordpress_default || !is_email($from)) ? '' : $from;
    return $store_from;
}

function shophosting_mail_from_name($name) {
    // WordPress's default sender name; the store's title says who writes.
    if ($name === 'WordPress') {
        $title = wp_specialchars_decode((string) get_bloginfo('name'), ENT_QUOTES);
        return $title !== '' ? $title : $name;
    }
    return $name;
}

function shophosting_mail_failed($error) {
    // Into the container's log (the operator's view): the relay refused or did not answer.
    error_log('ShopHosting mail relay: ' . $error->get_error_message());
}
