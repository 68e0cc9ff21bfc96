<?php
// After a store's primary name changed: every URL on one of its old names in WordPress's tables moves to the new
// one, as `wp search-replace` does (the local image has no wp-cli). Serialized values (options, post and user
// meta) are unserialized, replaced inside, and serialized again, so their string lengths stay right; a value
// that holds an object of a class not loaded here is left as it was (rewriting it blind could break it).
// Only `//<old name>` followed by a character that cannot continue a host name is replaced, so a.example never
// touches a.example.org. Then home and siteurl are WORDPRESS_URL.
// Inputs from the environment (docker exec -e): SHOPHOSTING_OLD_NAMES (comma separated), SHOPHOSTING_NEW_NAME,
// WORDPRESS_URL. Prints what it changed; exits 1 with the reason on stderr.
$url = getenv('WORDPRESS_URL');
$new = getenv('SHOPHOSTING_NEW_NAME');
$old = array_values(array_filter(array_map('trim', explode(',', getenv('SHOPHOSTING_OLD_NAMES') ?: ''))));
$host = '/^[a-z0-9.-]+$/';
if (!$url || !$new || !preg_match($host, $new)) {
    fwrite(STDERR, "SHOPHOSTING_NEW_NAME and WORDPRESS_URL are required\n");
    exit(1);
}
foreach ($old as $name) {
    if (!preg_match($host, $name)) {
        fwrite(STDERR, "not a host name: $name\n");
        exit(1);
    }
}
$_SERVER['HTTP_HOST'] = $new;
$_SERVER['REQUEST_URI'] = '/';
require '/var/www/html/wp-load.php';

$pattern = $old ? '#//(' . implode('|', array_map(fn ($n) => preg_quote($n, '#'), $old)) . ')(?![a-z0-9.-])#i' : null;

function shophosting_replace($value, string $pattern, string $new, bool &$changed, bool &$opaque)
{
    if (is_string($value)) {
        if (is_serialized($value)) {  // WordPress's own test; nested serialized strings recurse here too
            $data = @unserialize($value, ['allowed_classes' => ['stdClass']]);
            if ($data !== false || $value === 'b:0;') {
                $inner_changed = false;
                $replaced = shophosting_replace($data, $pattern, $new, $inner_changed, $opaque);
                if ($inner_changed) {
                    $changed = true;
                    return serialize($replaced);
                }
                return $value;
            }
        }
        $result = preg_replace($pattern, '//' . $new, $value);
        if ($result !== $value) {
            $changed = true;
        }
        return $result;
    }
    if (is_array($value)) {
        foreach ($value as $key => $item) {
            $value[$key] = shophosting_replace($item, $pattern, $new, $changed, $opaque);
        }
        return $value;
    }
    if ($value instanceof __PHP_Incomplete_Class) {
        $opaque = true;  // a class this script does not load: left alone
        return $value;
    }
    if (is_object($value)) {
        foreach (get_object_vars($value) as $key => $item) {
            $value->$key = shophosting_replace($item, $pattern, $new, $changed, $opaque);
        }
        return $value;
    }
    return $value;
}

global $wpdb;
$rows_changed = 0;
$skipped = 0;
if ($pattern) {
    $like = [];
    foreach ($old as $name) {
        $like[] = '%' . $wpdb->esc_like('//' . $name) . '%';
    }
    $tables = $wpdb->get_col($wpdb->prepare('SHOW TABLES LIKE %s', $wpdb->esc_like($wpdb->prefix) . '%'));
    foreach ($tables as $table) {
        $columns = $wpdb->get_results("SHOW COLUMNS FROM `$table`");
        $keys = array_values(array_filter($columns, fn ($c) => $c->Key === 'PRI'));
        if (count($keys) !== 1) {
            continue;  // every WordPress table has a one-column primary key; anything else is not ours to edit
        }
        $key = $keys[0]->Field;
        foreach ($columns as $column) {
            if (!preg_match('/char|text|blob/i', $column->Type) || $column->Field === $key) {
                continue;
            }
            $field = $column->Field;
            $where = implode(' OR ', array_fill(0, count($like), "`$field` LIKE %s"));
            $rows = $wpdb->get_results($wpdb->prepare("SELECT `$key` AS k, `$field` AS v FROM `$table` WHERE $where", $like));
            foreach ($rows as $row) {
                $changed = false;
                $opaque = false;
                $value = shophosting_replace($row->v, $pattern, $new, $changed, $opaque);
                if ($opaque && !$changed) {
                    $skipped++;
                }
                if ($changed) {
                    $wpdb->update($table, [$field => $value], [$key => $row->k]);
                    $rows_changed++;
                }
            }
        }
    }
}
// Written to the table directly: with WP_HOME and WP_SITEURL defined (the platform's wp-config), get_option()
// answers the constants, and update_option() skips a value equal to what it reads.
foreach (['home', 'siteurl'] as $option) {
    $wpdb->update($wpdb->options, ['option_value' => $url], ['option_name' => $option]);
}
wp_cache_flush();
echo "replaced the old names in $rows_changed values" . ($skipped ? ", left $skipped holding unknown objects" : '') . "\n";
echo "home and siteurl: $url\n";
