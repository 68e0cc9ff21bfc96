from provisioning.stacks.base import ServiceSpec, StackSpec, mariadb_service, redis_service, tcp_healthcheck


class WooCommerceStack(StackSpec):
    platform = "woocommerce"
    web_port = 80
    database_user = "wordpress"

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
                    "WORDPRESS_DB_PASSWORD": creds.get("db_password", ""),
                    "WORDPRESS_URL": f"http://{store.domain}",
                    # The object cache drop-in (deploy/images/wordpress/object-cache.php) in the store's Redis.
                    "WORDPRESS_REDIS_HOST": "cache",
                    "WORDPRESS_REDIS_DATABASE": "0",
                    "WORDPRESS_REDIS_PREFIX": self.cache_prefix,
                    # The official image reads extra wp-config lines from here; the local one reads the above.
                    "WORDPRESS_CONFIG_EXTRA": (
                        f"define('WP_HOME', 'http://{store.domain}'); define('WP_SITEURL', 'http://{store.domain}');"
                        " define('WP_REDIS_HOST', 'cache'); define('WP_REDIS_DATABASE', 0);"
                        f" define('WP_REDIS_PREFIX', '{self.cache_prefix}'); define('WP_HTTP_BLOCK_EXTERNAL', true);"
                    ),
                },
                volumes={"wp-content": "/var/www/html/wp-content"},
                healthcheck=tcp_healthcheck(80),
                published_port=self.web_port,
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
                )
            )
        return services

    install_name = "WordPress install"

    def install_commands(self, creds: dict[str, str]) -> list[tuple[list[str], dict[str, str]]]:
        """WordPress's own wp_install() through wp-install.php: every value, the customer's site title and the
        admin password included, goes through the exec's environment, none through the command line."""
        store = self.store
        environment = {
            "WORDPRESS_URL": f"http://{store.domain}",
            "WP_TITLE": store.site_title,
            "WP_ADMIN_USER": creds["admin_user"],
            "WP_ADMIN_EMAIL": creds["admin_email"],
            "WP_ADMIN_PASSWORD": creds["admin_password"],
        }
        return [(["php", "/usr/local/share/shophosting/wp-install.php"], environment)]
