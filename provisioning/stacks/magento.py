from provisioning.stacks.base import ServiceSpec, StackSpec

WEB_PORT = 8080  # web listens here; Varnish's backend must match it


class MagentoStack(StackSpec):
    platform = "magento"
    web_role = "varnish"
    web_port = 80

    def services(self, *, include_optional=False, credentials=None):
        creds = credentials or {}
        store = self.store
        return [
            ServiceSpec(
                role="db",
                image=self.image("db"),
                memory_mb=1024,
                cpus=1.0,
                environment={
                    "MARIADB_DATABASE": "magento",
                    "MARIADB_USER": "magento",
                    "MARIADB_PASSWORD": creds.get("db_password", ""),
                    "MARIADB_ROOT_PASSWORD": creds.get("db_root_password", ""),
                },
                volumes={"db": "/var/lib/mysql"},
                healthcheck=["CMD", "healthcheck.sh", "--connect"],
            ),
            ServiceSpec(
                role="cache",
                image=self.image("cache"),
                memory_mb=256,
                cpus=0.25,
                healthcheck=["CMD", "redis-cli", "ping"],
            ),
            ServiceSpec(
                role="search",
                image=self.image("search"),
                memory_mb=1024,
                cpus=0.5,
                environment={"discovery.type": "single-node", "OPENSEARCH_JAVA_OPTS": "-Xms512m -Xmx512m"},
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
            ),
            ServiceSpec(
                role="varnish",
                image=self.image("varnish"),
                memory_mb=512,
                cpus=0.5,
                environment={"VARNISH_BACKEND_HOST": "web", "VARNISH_BACKEND_PORT": str(WEB_PORT)},
                published_port=80,
            ),
        ]
