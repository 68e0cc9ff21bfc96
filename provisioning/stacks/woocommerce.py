import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from provisioning.image_contract import (
    WORDPRESS_INSTALLER,
    WORDPRESS_MU_PLUGINS,
    WORDPRESS_UPGRADER,
    WORDPRESS_URL_REPLACER,
)
from provisioning.stacks.base import (
    SMTP_PASSWORD_SECRET,
    WWW_DATA_GID,
    ServiceSpec,
    StackSpec,
    mariadb_service,
    redis_service,
    secret_path,
    smtp_secrets,
    store_mail_from,
    tcp_healthcheck,
)

# Apache starts as root, serves as www-data (SETUID, SETGID) and signals its www-data children to stop or
# recycle (KILL; without it a stop waits for the engine's 10 s kill). Ports below 1024 need no capability:
# Docker (20.10 and later) opens them to every user inside the container's network namespace.
APACHE_CAPABILITIES = ("KILL", "SETGID", "SETUID")
# The WordPress entrypoints, as root, write into the www-data-owned wp-content (DAC_OVERRIDE: the local
# image's salts; the official image copies core into its www-data-owned /var/www/html) and give the files
# to www-data (CHOWN).
WORDPRESS_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", *APACHE_CAPABILITIES)
# phpMyAdmin's entrypoint makes its cookie secret readable by www-data only (CHOWN).
PHPMYADMIN_CAPABILITIES = ("CHOWN", *APACHE_CAPABILITIES)
# What Apache and PHP write outside the volumes: the run and lock directories (/var/run/apache2 and
# /var/lock are links into /run), PHP's sessions and uploads in progress.
APACHE_TMPFS = {
    "/run/apache2": "rw,nosuid,nodev,noexec,size=16m",
    "/run/lock": "rw,nosuid,nodev,noexec,size=1m",
    "/tmp": "rw,nosuid,nodev,noexec,size=256m",  # noqa: S108 - a tmpfs of the container's own
    "/var/lib/php/sessions": "rw,nosuid,nodev,noexec,size=64m,mode=1733",
}

# Every store's wp-config, whatever its image (both images eval the stack's WORDPRESS_CONFIG_EXTRA): no theme
# and plugin editor in wp-admin (a stolen admin login must not become code on the store), and no update of
# core, plugins or themes from inside the store (the platform updates images; a store updating itself would
# write into a read-only core and drift from the image it runs).
WORDPRESS_HARDENING = (
    "define('DISALLOW_FILE_EDIT', true);"
    " define('AUTOMATIC_UPDATER_DISABLED', true);"
    " define('WP_AUTO_UPDATE_CORE', false);"
)
# The platform's must-use plugins (the mailer) load from the image, not from the store's wp-content volume:
# they come and go with the image, no store can lose or keep an old copy, and the local image's read-only
# core and the official image's copied one are alike. The store's own wp-content/mu-plugins still load
# (the image's shophosting-store-mu-plugins.php does that).
WORDPRESS_PLATFORM_PLUGINS = f"define('WPMU_PLUGIN_DIR', '{WORDPRESS_MU_PLUGINS}');"


def wordpress_urls(*, scheme: str, primary: str, names: list[str]) -> str:
    """wp-config lines for WP_HOME and WP_SITEURL: the scheme the request came through the platform's proxy
    with (X-Forwarded-Proto, which our nginx always sets; is_ssl() follows it) or else the stack's `scheme`,
    and the requested host (with its port, as the demo proxy's) when it is one of the store's `names` (the
    platform name works before the merchant's DNS does), else the `primary` name. Names are validated DNS
    names: no quote can occur."""
    for value in (scheme, primary, *names):
        if not re.fullmatch(r"[a-z0-9.-]+", value):
            raise ImproperlyConfigured(f"refusing {value!r} as a WordPress URL part")
    listed = ", ".join(f"'{name}'" for name in names)
    return (
        " $shophosting_https = ($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '') === 'https';"
        " if ($shophosting_https) { $_SERVER['HTTPS'] = 'on'; }"
        " $shophosting_host = strtolower($_SERVER['HTTP_HOST'] ?? '');"
        " $shophosting_name = preg_replace('/:[0-9]{1,5}$/', '', $shophosting_host);"
        f" $shophosting_url = ($shophosting_https ? 'https' : '{scheme}') . '://'"
        f" . (in_array($shophosting_name, [{listed}], true) ? $shophosting_host : '{primary}');"
        " define('WP_HOME', $shophosting_url); define('WP_SITEURL', $shophosting_url);"
        # WordPress would force wp-admin to HTTPS when WP_SITEURL is https (wp_ssl_constants): our nginx does
        # that already for every certified name, and the platform's own checks (an update's login page check)
        # reach the container's port over plain HTTP.
        " if (!defined('FORCE_SSL_ADMIN')) { define('FORCE_SSL_ADMIN', false); }"
    )


def wordpress_mail_environment(domain: str) -> dict[str, str]:
    """What the image's mailer mu-plugin (deploy/images/wordpress/mu-plugins/shophosting-mail.php) reads:
    the platform's relay, the password as a file, and the store's From address. No relay: nothing, and
    WordPress keeps its own mailer (which finds no sendmail in the image)."""
    if not settings.STORE_SMTP_HOST:
        return {}
    environment = {
        "SHOPHOSTING_SMTP_HOST": settings.STORE_SMTP_HOST,
        "SHOPHOSTING_SMTP_PORT": str(settings.STORE_SMTP_PORT),
        "SHOPHOSTING_SMTP_SECURITY": settings.STORE_SMTP_SECURITY,
        "SHOPHOSTING_MAIL_FROM": store_mail_from(domain),
    }
    if settings.STORE_SMTP_USER:
        environment["SHOPHOSTING_SMTP_USER"] = settings.STORE_SMTP_USER
        environment["SHOPHOSTING_SMTP_PASSWORD_FILE"] = secret_path(SMTP_PASSWORD_SECRET)
    return environment


# A host WordPress may call while it blocks outbound HTTP: a name, an address, or a "*." wildcard.
ACCESSIBLE_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def wordpress_outbound_http() -> str:
    """WordPress's own outbound HTTP switch, from the platform's settings (never the image's): in production
    WordPress calls out (payment gateways, updates) and the host's fence decides where it may go
    (provisioning/egress.py); where nothing outside answers (development, tests) it blocks, but for the
    hosts STORE_HTTP_ACCESSIBLE_HOSTS names."""
    if not settings.STORE_HTTP_BLOCK_EXTERNAL:
        return ""
    hosts = [host.strip() for host in settings.STORE_HTTP_ACCESSIBLE_HOSTS if host.strip()]
    for host in hosts:
        if not ACCESSIBLE_HOST.match(host):
            raise ImproperlyConfigured(f"STORE_HTTP_ACCESSIBLE_HOSTS: {host!r} is not a host name or address")
    accessible = f" define('WP_ACCESSIBLE_HOSTS', '{','.join(hosts)}');" if hosts else ""
    return f" define('WP_HTTP_BLOCK_EXTERNAL', true);{accessible}"


# A claimed pool stack becomes the store's in one PHP run (`php -r`, every value from the exec's environment,
# none on the command line), since each run loads WordPress (about 0.3 s here):
# 1. where the pool's web container keeps running (SHOPHOSTING_SITE_FILE set): new application keys (the
#    salts, as the image's entrypoint makes them) and the store's names and mail in the claimed-site file,
#    which the pool's configuration reads first; both written atomically, before WordPress loads them;
# 2. the pool's placeholder administrator (the first one) takes the store's login, e-mail and password, with
#    every session of it ended; the title and the admin e-mail options are the store's;
# 3. the image's search-replace (wp-search-replace.php: wp-load.php loads once, its second require is a no-op)
#    moves the placeholder domain everywhere, sets home and siteurl, and empties the object cache.
# Idempotent: a retry writes new keys and the same identity again.
WORDPRESS_CLAIM_PHP = r"""
function shophosting_put($f, $content) {
    file_put_contents("$f.tmp", $content);
    chown("$f.tmp", 'www-data'); chgrp("$f.tmp", 'www-data'); rename("$f.tmp", $f);
}
$site_file = getenv('SHOPHOSTING_SITE_FILE');
if ($site_file) {
    $salts = "<?php\n";
    foreach (['AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT',
              'LOGGED_IN_SALT', 'NONCE_SALT'] as $name) {
        $salts .= "define('$name', '" . bin2hex(random_bytes(32)) . "');\n";
    }
    shophosting_put(getenv('SHOPHOSTING_SALTS_FILE'), $salts);
    shophosting_put($site_file, getenv('SHOPHOSTING_SITE'));
    echo "new application keys; the store's names and mail\n";
}
$url = getenv('WORDPRESS_URL');
$_SERVER['HTTP_HOST'] = parse_url($url, PHP_URL_HOST);
$_SERVER['REQUEST_URI'] = '/';
require '/var/www/html/wp-load.php';
add_filter('pre_wp_mail', '__return_true');
add_filter('send_password_change_email', '__return_false');
add_filter('send_email_change_email', '__return_false');
$admins = get_users(['role' => 'administrator', 'orderby' => 'ID', 'order' => 'ASC', 'number' => 1]);
if (!$admins) { fwrite(STDERR, "the pool stack has no administrator\n"); exit(1); }
$id = $admins[0]->ID;
$login = sanitize_user(getenv('WP_ADMIN_USER'), true);
if ($login === '') { fwrite(STDERR, "the admin user name is empty once sanitized\n"); exit(1); }
global $wpdb;
$wpdb->update($wpdb->users,
    ['user_login' => $login, 'user_nicename' => sanitize_title($login), 'display_name' => $login], ['ID' => $id]);
clean_user_cache($id);
$result = wp_update_user(['ID' => $id, 'user_email' => getenv('WP_ADMIN_EMAIL'),
    'user_pass' => getenv('WP_ADMIN_PASSWORD'), 'nickname' => $login]);
if (is_wp_error($result)) { fwrite(STDERR, "admin update failed: " . $result->get_error_message() . "\n"); exit(1); }
WP_Session_Tokens::get_instance($id)->destroy_all();
update_option('blogname', getenv('WP_TITLE'));
update_option('admin_email', getenv('WP_ADMIN_EMAIL'));
echo "administrator and title are the store's\n";
require getenv('SHOPHOSTING_URL_REPLACER');
"""


# A warm pool stack's web container is configured for the pool; the store that claims it keeps it running
# (no restart: Apache's start is most of a claim's time) and writes its own names and mail here, which the
# pool's configuration reads first. A container created later for the store (a restart does not; an update or
# a primary-name change does) has the store's own configuration and never reads this file. The image's PHP
# never caches this file or the salts (deploy/images/wordpress/opcache-blacklist.txt): Apache reads the
# claim's at its next request, not after opcache's revalidation delay.
CLAIMED_SITE_FILE = "/var/www/html/wp-content/shophosting-claimed-site.php"
# The local image's application keys (its entrypoint makes them once per wp-content volume).
SALTS_FILE = "/var/www/html/wp-content/shophosting-salts.php"


def php_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class WooCommerceStack(StackSpec):
    platform = "woocommerce"
    poolable = True
    # The local image keeps its salts in wp-content (its entrypoint makes them when missing); the official
    # image's are in its wp-config.php, in the container's own /var/www/html, which goes with the container.
    claim_forget_commands = (["rm", "-f", SALTS_FILE],)
    web_port = 80
    database_user = "wordpress"
    admin_login_path = "/wp-login.php"
    admin_login_marker = 'name="log"'

    @property
    def cache_prefix(self) -> str:
        """Before every object cache key: the store's own, so its keys are told apart in any Redis."""
        return f"{self.store.slug}:"

    def services(self, *, include_optional=False, credentials=None):
        creds = credentials or {}
        store = self.store
        services = [
            mariadb_service(self, database=self.database_user, memory_mb=512, cpus=0.5, creds=creds),
            redis_service(self),
            ServiceSpec(
                role="web",
                image=self.image("web"),
                memory_mb=store.memory_mb,
                cpus=store.cpus,
                environment={
                    "WORDPRESS_DB_HOST": "db",
                    "WORDPRESS_DB_NAME": self.database_user,
                    "WORDPRESS_DB_USER": self.database_user,
                    "WORDPRESS_DB_PASSWORD_FILE": secret_path("db_password"),
                    "WORDPRESS_URL": self.primary_url,
                    # The object cache drop-in (deploy/images/wordpress/object-cache.php) in the store's Redis.
                    "WORDPRESS_REDIS_HOST": "cache",
                    "WORDPRESS_REDIS_DATABASE": "0",
                    "WORDPRESS_REDIS_PREFIX": self.cache_prefix,
                    # A staging copy sends no mail: no relay, and its mu-plugin captures every message
                    # (backups/staging/wordpress/shophosting-staging.php, which acts only with this flag).
                    **(
                        {"SHOPHOSTING_STAGING": "1"}
                        if store.staging_of_id
                        else wordpress_mail_environment(store.domain)
                    ),
                    # Extra wp-config lines, evaluated by both images' wp-config.php (the local one also reads
                    # the variables above, for what this does not define).
                    "WORDPRESS_CONFIG_EXTRA": (
                        self._urls_config() + " define('WP_REDIS_HOST', 'cache'); define('WP_REDIS_DATABASE', 0);"
                        f" define('WP_REDIS_PREFIX', '{self.cache_prefix}');{wordpress_outbound_http()}"
                        f" {WORDPRESS_HARDENING}"
                        f" {WORDPRESS_PLATFORM_PLUGINS}"
                    ),
                },
                volumes={"wp-content": "/var/www/html/wp-content"},
                healthcheck=tcp_healthcheck(80),
                published_port=self.web_port,
                cap_add=WORDPRESS_CAPABILITIES,
                # Core is in the image (read-only here); the store's own files are in wp-content. The
                # official image copies core into its /var/www/html volume, which stays writable.
                read_only=True,
                tmpfs=APACHE_TMPFS,
                secrets={
                    "db_password": creds.get("db_password", ""),
                    **({} if store.staging_of_id else smtp_secrets()),
                },
                secrets_gid=WWW_DATA_GID,  # wp-config.php reads it in every PHP request
            ),
        ]
        if include_optional:
            # Published on 127.0.0.1 only (an SSH tunnel reaches it), on a port Docker picks; cookie
            # login every time, never an auto-login.
            services.append(
                ServiceSpec(
                    role="phpmyadmin",
                    image=self.image("phpmyadmin"),
                    memory_mb=256,
                    cpus=0.25,
                    environment={"PMA_HOST": "db"},
                    healthcheck=tcp_healthcheck(80),
                    published_port=80,
                    optional=True,
                    cap_add=PHPMYADMIN_CAPABILITIES,
                    # Not read-only: the entrypoints (the local one and the official image's) write the
                    # cookie secret into /etc/phpmyadmin on first start, to keep it across restarts.
                    read_only=False,
                )
            )
        return services

    install_name = "WordPress install"

    def _urls_config(self) -> str:
        urls = wordpress_urls(scheme=self.url_scheme, primary=self.primary_name, names=self.served_names)
        if self.store.status != "pooled":
            return urls
        # The pool's own names until a store claims the stack and writes its own (claim_commands, in place).
        return f" if (is_readable('{CLAIMED_SITE_FILE}')) {{ require '{CLAIMED_SITE_FILE}'; }} else {{{urls} }}"

    def install_commands(self, creds: dict[str, str]) -> list[tuple[list[str], dict[str, str]]]:
        """WordPress's own wp_install() through wp-install.php: every value, the customer's site title and the
        admin password included, goes through the exec's environment, none through the command line."""
        store = self.store
        environment = {
            "WORDPRESS_URL": self.primary_url,
            "WP_TITLE": store.site_title,
            "WP_ADMIN_USER": creds["admin_user"],
            "WP_ADMIN_EMAIL": creds["admin_email"],
            "WP_ADMIN_PASSWORD": creds["admin_password"],
            # Whether the image must carry WooCommerce (production) or may lack it (the local test image):
            # the settings say, so a production store whose plugin is missing or fails to activate fails
            # its install with the reason instead of going live without a shop.
            "SHOPHOSTING_REQUIRE_WOOCOMMERCE": "1" if settings.STORE_WOOCOMMERCE_REQUIRED else "0",
        }
        return [(["php", WORDPRESS_INSTALLER], environment)]

    claim_in_place_keys = SALTS_FILE

    def claim_commands(
        self, creds: dict[str, str], *, pool_domain: str, in_place: bool
    ) -> list[tuple[list[str], dict[str, str]]]:
        environment = {
            "WORDPRESS_URL": self.primary_url,
            "WP_TITLE": self.store.site_title,
            "WP_ADMIN_USER": creds["admin_user"],
            "WP_ADMIN_EMAIL": creds["admin_email"],
            "WP_ADMIN_PASSWORD": creds["admin_password"],
            **self.url_replace_commands(old_names=[pool_domain])[0][1],
            "SHOPHOSTING_URL_REPLACER": WORDPRESS_URL_REPLACER,
        }
        if in_place:
            site = "<?php\n" + wordpress_urls(
                scheme=self.url_scheme, primary=self.primary_name, names=self.served_names
            )
            for key, value in wordpress_mail_environment(self.store.domain).items():
                site += f"\nputenv({php_string(f'{key}={value}')});"
            environment |= {
                "SHOPHOSTING_SALTS_FILE": SALTS_FILE,
                "SHOPHOSTING_SITE_FILE": CLAIMED_SITE_FILE,
                "SHOPHOSTING_SITE": site,
            }
        return [(["php", "-r", WORDPRESS_CLAIM_PHP], environment)]

    def url_replace_commands(self, *, old_names: list[str]) -> list[tuple[list[str], dict[str, str]]]:
        """wp-search-replace.php: every `//<old name>` in WordPress's tables becomes `//<primary>` with
        serialized values unserialized, replaced and serialized again (their string lengths change), then
        home and siteurl are the primary URL. The image's own script on both images, so one code path."""
        environment = {
            "WORDPRESS_URL": self.primary_url,
            "SHOPHOSTING_OLD_NAMES": ",".join(old_names),
            "SHOPHOSTING_NEW_NAME": self.primary_name,
        }
        return [(["php", WORDPRESS_URL_REPLACER], environment)]

    def upgrade_commands(self) -> list[tuple[list[str], dict[str, str]]]:
        """WordPress's own wp_upgrade() through wp-upgrade.php (what wp-admin/upgrade.php runs)."""
        return [(["php", WORDPRESS_UPGRADER], {"WORDPRESS_URL": self.primary_url})]
