import json

from provisioning.stacks.base import ServiceSpec, StackSpec, mariadb_service, redis_service, tcp_healthcheck

WEB_PORT = 8080  # web listens here; Varnish's backend must match it


class MagentoStack(StackSpec):
    """varnish (published) → web:8080 → db, cache (redis), search (OpenSearch)."""

    platform = "magento"
    web_port = 80
    install_name = "Magento setup:install"
    database_user = "magento"
    app_roles = ("web", "varnish")  # Varnish after web: it resolves its backend when it loads the VCL

    def services(self, *, include_optional=False, credentials=None):
        creds = credentials or {}
        store = self.store
        return [
            mariadb_service(self, database=self.database_user, memory_mb=1024, cpus=1.0, creds=creds),
            redis_service(self),
            ServiceSpec(
                role="search",
                image=self.image("search"),
                memory_mb=1024,
                cpus=0.5,
                environment={
                    "discovery.type": "single-node",
                    "OPENSEARCH_JAVA_OPTS": "-Xms512m -Xmx512m",
                    "DISABLE_SECURITY_PLUGIN": "true",
                },
                volumes={"search": "/usr/share/opensearch/data"},
                healthcheck=tcp_healthcheck(9200),
            ),
            ServiceSpec(
                role="web",
                image=self.image("web"),
                memory_mb=store.memory_mb,
                cpus=store.cpus,
                environment={
                    "MAGENTO_DB_HOST": "db",
                    "MAGENTO_DB_NAME": "magento",
                    "MAGENTO_DB_USER": "magento",
                    "MAGENTO_DB_PASSWORD": creds.get("db_password", ""),
                    "MAGENTO_SEARCH_HOST": "search",
                    "MAGENTO_REDIS_HOST": "cache",
                    "MAGENTO_BASE_URL": f"http://{store.domain}/",
                    "MAGENTO_LISTEN_PORT": str(WEB_PORT),
                },
                volumes={"media": "/var/www/html/pub/media"},
                healthcheck=tcp_healthcheck(WEB_PORT),
            ),
            ServiceSpec(
                role="varnish",
                image=self.image("varnish"),
                memory_mb=512,
                cpus=0.5,
                environment={"VARNISH_BACKEND_HOST": "web", "VARNISH_BACKEND_PORT": str(WEB_PORT)},
                healthcheck=tcp_healthcheck(80),
                published_port=80,
            ),
        ]

    def install_commands(self, creds: dict[str, str]) -> list[tuple[list[str], dict[str, str]]]:
        """Magento's installer, then the store name: (argument list, exec environment) pairs.

        Passwords go through the exec's environment to shophosting-magento-install, which hands them to
        setup:install in-process: a command line is visible to every user of the host (`ps`), an exec's
        environment is not. Values a customer chose are never a token of their own that Magento's console
        could read as an option: they sit inside `--name=value` or after `--`."""
        store = self.store
        options = {
            "base-url": f"http://{store.domain}/",
            "db-host": "db",
            "db-name": "magento",
            "db-user": "magento",
            "db-password": creds["db_password"],
            "admin-firstname": store.customer.first_name or "Store",
            "admin-lastname": store.customer.last_name or "Owner",
            "admin-email": creds["admin_email"],
            "admin-user": creds["admin_user"],
            "admin-password": creds["admin_password"],
            "search-engine": "opensearch",
            "opensearch-host": "search",
            "opensearch-port": "9200",
            # Cache and sessions in the store's Redis (its `cache` service), in databases of their own;
            # full pages are Varnish's.
            "cache-backend": "redis",
            "cache-backend-redis-server": "cache",
            "cache-backend-redis-port": "6379",
            "cache-backend-redis-db": "0",
            "session-save": "redis",
            "session-save-redis-host": "cache",
            "session-save-redis-port": "6379",
            "session-save-redis-db": "2",
            "use-rewrites": "1",
        }
        return [
            (["shophosting-magento-install"], {"SHOPHOSTING_MAGENTO_INSTALL": json.dumps(options)}),
            (
                ["/var/www/html/bin/magento", "config:set", "--", "general/store_information/name", store.site_title],
                {},
            ),
        ]
