<?php
/*
 * Plugin Name: ShopHosting: the store's own must-use plugins
 * Description: Loads wp-content/mu-plugins, since WordPress loads must-use plugins from the image's directory.
 *
 * The platform points WPMU_PLUGIN_DIR at the image, so its own must-use plugins are part of the image and not
 * of the store's wp-content volume. WordPress then loads only that directory: the store's own
 * wp-content/mu-plugins (what a merchant or a plugin put there) are loaded here, the way WordPress would load
 * them: the top-level .php files, in name order.
 */
$shophosting_store_mu_dir = wp_normalize_path(WP_CONTENT_DIR . '/mu-plugins');
if ($shophosting_store_mu_dir !== wp_normalize_path(WPMU_PLUGIN_DIR) && is_dir($shophosting_store_mu_dir)) {
    // plugins_url() knows only WPMU_PLUGIN_DIR's URL; a file of wp-content/mu-plugins gets its own (before
    // they load: a plugin may ask for its URL as it loads).
    add_filter('plugins_url', function ($url, $path, $plugin) use ($shophosting_store_mu_dir) {
        $plugin = wp_normalize_path((string) $plugin);
        if ($plugin === '' || strpos($plugin, $shophosting_store_mu_dir . '/') !== 0) {
            return $url;
        }
        $folder = trim(dirname(substr($plugin, strlen($shophosting_store_mu_dir))), '/.');
        $url = content_url('mu-plugins' . ($folder !== '' ? '/' . $folder : ''));
        return $path ? $url . '/' . ltrim($path, '/') : $url;
    }, 10, 3);

    $shophosting_store_mu_plugins = glob($shophosting_store_mu_dir . '/*.php') ?: [];
    sort($shophosting_store_mu_plugins);
    foreach ($shophosting_store_mu_plugins as $shophosting_store_mu_plugin) {
        include_once $shophosting_store_mu_plugin;
        do_action('mu_plugin_loaded', $shophosting_store_mu_plugin);
    }
    unset($shophosting_store_mu_plugins, $shophosting_store_mu_plugin);
}
