from dataclasses import dataclass, field

from django.conf import settings


def tcp_healthcheck(port: int) -> list[str]:
    """Healthy once the service accepts TCP connections; bash is in every image the stacks use."""
    return ["CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"]


DB_HEALTHCHECK = ["CMD", "healthcheck.sh", "--connect"]  # the official MariaDB image's script
CACHE_HEALTHCHECK = ["CMD", "redis-cli", "ping"]

# Where a container finds its secrets as files (the `*_FILE` contract of the official images): a small
# volume of its own, written by the platform through the engine and mounted read-only.
SECRETS_DIR = "/run/secrets"
# The root password of the store's MariaDB, for commands run in its container (backups, verification,
# tests): read from the secret file into the client's environment, never onto a command line.
DB_ROOT_CLIENT_ENV = 'MYSQL_PWD="$(cat "$MARIADB_ROOT_PASSWORD_FILE")"'
# Group that reads a service's secret files (0440, owner root): the user the image serves as.
WWW_DATA_GID = 33  # Debian's www-data, in the local and the official WordPress/Apache images
MYSQL_GID = 999  # the official MariaDB image's mysql, which re-reads the files after dropping root


def secret_path(name: str) -> str:
    return f"{SECRETS_DIR}/{name}"


# The platform's SMTP relay password, as a secret file of the web container (settings.STORE_SMTP_PASSWORD).
SMTP_PASSWORD_SECRET = "smtp_password"  # noqa: S105 - the file name, not a password


def store_mail_from(domain: str) -> str:
    """The From address of a store's mail: the configured sender (STORE_MAIL_FROM), else store@ the store's
    domain (without a leading www., as WordPress does), so the relay's DKIM signature and the domain's SPF
    record align with what the recipient sees (README, "Store mail")."""
    if settings.STORE_MAIL_FROM:
        return settings.STORE_MAIL_FROM
    return f"store@{domain.lower().removeprefix('www.')}"


def smtp_secrets() -> dict[str, str]:
    """The web container's secret files for the relay: the password, when the relay takes one."""
    if not (settings.STORE_SMTP_HOST and settings.STORE_SMTP_USER and settings.STORE_SMTP_PASSWORD):
        return {}
    return {SMTP_PASSWORD_SECRET: settings.STORE_SMTP_PASSWORD}


@dataclass(frozen=True)
class ServiceSpec:
    role: str  # also the container's alias on the store network ("db", "cache", "web", ...)
    image: str
    memory_mb: int
    cpus: float
    environment: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)  # volume suffix -> mount path
    command: list[str] | None = None
    healthcheck: list[str] | None = None
    published_port: int | None = None  # container port published on the host's bind address
    optional: bool = False
    # Confinement: every capability is dropped and only these are added back (what the image needs to run).
    cap_add: tuple[str, ...] = ()
    # A read-only root filesystem, with tmpfs mounts (path -> mount options) for what the image writes
    # outside its volumes. False only where the image writes into its own tree (the stack says why).
    read_only: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)
    # Files under SECRETS_DIR (name -> content), readable by root and `secrets_gid` only.
    secrets: dict[str, str] = field(default_factory=dict)
    secrets_gid: int = 0
    user: str | None = None  # run as this user of the image instead of its default (root)

    @property
    def pids_limit(self) -> int:
        return settings.STORE_PIDS_LIMITS.get(self.role, settings.STORE_PIDS_LIMIT_DEFAULT)


class StackSpec:
    """What a platform differs in; steps.py reads these and never branches on the platform itself."""

    platform = ""
    # Whether stacks of this platform can be kept warm and claimed (provisioning/pool.py): the stack knows
    # how to hand an installed application to a new owner (`claim_commands`).
    poolable = False
    install_name = ""  # how job errors name the installer
    database_user = ""  # the application's MariaDB user (and database), as its services() configure it
    # The services that serve requests, in start order; every other service is a data service, started
    # before them and left running when they stop (suspend stops everything, app_stop only these).
    app_roles: tuple[str, ...] = ("web",)

    # The admin login page an update checks after the new version started: its path, and what the page
    # must contain (the login form's user field), so an error page answering 200 fails the check.
    admin_login_path = ""
    admin_login_marker = ""

    def __init__(self, store):
        self.store = store
        self._recorded_images: dict[str, str] | None = None

    def image(self, role: str) -> str:
        """The image this store runs for `role`: the one recorded for it (provisioning.models.StoreImage: set
        when it was placed, changed by an update), else the settings' default, which new stores get."""
        if self._recorded_images is None:
            from provisioning.models import StoreImage  # the stacks are imported by the models' app loading

            self._recorded_images = (
                dict(StoreImage.objects.filter(store_id=self.store.pk).values_list("role", "image"))
                if self.store.pk
                else {}
            )
        return self._recorded_images.get(role) or self.default_image(role)

    def default_image(self, role: str) -> str:
        return settings.STORE_IMAGES[self.platform][role]

    def services(
        self, *, include_optional: bool = False, credentials: dict[str, str] | None = None
    ) -> list[ServiceSpec]:
        raise NotImplementedError

    def install_commands(self, creds: dict[str, str]) -> list[tuple[list[str], dict[str, str]]]:
        """The platform's installer, run in the web container: (argument list, exec environment) pairs.
        Secrets travel in the environment, never on a command line."""
        raise NotImplementedError

    def claim_commands(
        self, creds: dict[str, str], *, pool_domain: str, in_place: bool
    ) -> list[tuple[list[str], dict[str, str]]]:
        """Commands run in the `web` container of a claimed pool stack, once its database passwords were
        rotated: the application's admin user, password, e-mail, title and URLs become the store's (the
        pool's placeholders go). `in_place`: the pool's web container keeps running (`claim_in_place_keys`), so
        the commands also make its application keys new and give it the store's names and mail; otherwise
        the container was recreated with the store's configuration, which made new keys."""
        raise NotImplementedError

    # Commands (argument lists) run in a claimed pool stack's web container before it is replaced: they remove
    # the application's keys kept in its volumes, which the new container then makes afresh.
    claim_forget_commands: tuple[list[str], ...] = ()
    # The file of application keys that claim_commands (in_place=True) renews in a claimed pool stack's running
    # web container: where the container has it, the container becomes the store's without being replaced;
    # else (None, or an image that keeps its keys elsewhere, such as the official WordPress image's
    # wp-config.php) it is replaced.
    claim_in_place_keys: str | None = None

    def url_replace_commands(self, *, old_names: list[str]) -> list[tuple[list[str], dict[str, str]]]:
        """Commands (argument list, exec environment) run in the `web` container after the primary name
        changed: the application's stored URLs on any of `old_names` move to `primary_url`."""
        raise NotImplementedError

    def upgrade_commands(self) -> list[tuple[list[str], dict[str, str]]]:
        """The application's own upgrade after its containers were recreated from a new image (its database
        schema and data brought to the new version), run in the `web` container like the installer."""
        raise NotImplementedError

    @property
    def url_scheme(self) -> str:
        """The scheme of the application's own URLs: https once the store's certificate covers every active
        name (the vhost then redirects HTTP there), else http. An input of the containers' environment,
        read when a container is created; requests through the platform's proxy carry the scheme they came
        with (X-Forwarded-Proto), which the application prefers, so a certificate issued later needs no
        recreate (provisioning/README.md, "Names and HTTPS")."""
        from stores.models import Store  # the stacks are imported by the models' app loading

        return "https" if self.store.tls_status == Store.TLS.ISSUED else "http"

    @property
    def primary_name(self) -> str:
        from stores.selectors import store_primary_name

        return store_primary_name(self.store) if self.store.pk else self.store.domain

    @property
    def served_names(self) -> list[str]:
        """Every name the store answers on (its vhost's), primary first."""
        from stores.selectors import store_names_served

        names = [row.name for row in store_names_served(self.store)] if self.store.pk else []
        return list(dict.fromkeys([self.primary_name, *names]))

    @property
    def primary_url(self) -> str:
        return f"{self.url_scheme}://{self.primary_name}"

    def container_name(self, role: str) -> str:
        return f"{self.store.slug}-{role}"

    def volume_name(self, suffix: str) -> str:
        return f"{self.store.slug}-{suffix}"

    @property
    def network_name(self) -> str:
        return f"{self.store.slug}-net"

    @property
    def labels(self) -> dict[str, str]:
        from stores.models import Store  # the stacks are imported by the models' app loading

        labels = {
            "shophosting.store": self.store.object_key,
            "shophosting.platform": self.platform,
            "shophosting.env": settings.STORE_OBJECT_PREFIX,
        }
        if self.store.status == Store.Status.POOLED:
            # Built for the warm pool: a claim recreates what carries this (the web container, with the store's
            # configuration); the data services keep it, as the engine cannot relabel a container.
            labels["shophosting.pool"] = "1"
        return labels


def mariadb_service(stack: "StackSpec", *, database: str, memory_mb: int, cpus: float, creds: dict) -> ServiceSpec:
    """The store's database, configured through the official MariaDB image's environment contract, its
    passwords as files (`MARIADB_*_PASSWORD_FILE`), so `docker inspect` shows none.

    Capabilities: the entrypoint runs as root and owns the data directory for mysql (CHOWN), deletes a
    half-initialised one (DAC_OVERRIDE: its files belong to mysql) and starts the server as mysql
    (SETUID, SETGID; the official image steps down with gosu). Read-only root: it writes only its data
    volume, the socket directory and temporary files (tmpfs)."""
    return ServiceSpec(
        role="db",
        image=stack.image("db"),
        memory_mb=memory_mb,
        cpus=cpus,
        environment={
            "MARIADB_DATABASE": database,
            "MARIADB_USER": database,
            "MARIADB_PASSWORD_FILE": secret_path("db_password"),
            "MARIADB_ROOT_PASSWORD_FILE": secret_path("db_root_password"),
        },
        volumes={"db": "/var/lib/mysql"},
        healthcheck=DB_HEALTHCHECK,
        cap_add=("CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"),
        read_only=True,
        tmpfs={
            "/run/mysqld": "rw,nosuid,nodev,noexec,size=16m",
            "/tmp": "rw,nosuid,nodev,noexec,size=256m",  # noqa: S108 - a tmpfs of the container's own
        },
        secrets={"db_password": creds.get("db_password", ""), "db_root_password": creds.get("db_root_password", "")},
        secrets_gid=MYSQL_GID,
    )


CACHE_MEMORY_MB = 256
# Redis's own bound, below the container's limit: the rest is headroom for Redis itself (allocator
# fragmentation, client buffers), so Redis evicts before the kernel OOM-kills the container.
CACHE_DATA_SHARE = 0.75


def redis_service(stack: "StackSpec") -> ServiceSpec:
    """The store's cache: Redis holds at most a share of the container's memory and then evicts the
    least-recently-used keys, whatever they are (every key in it can be rebuilt); no persistence;
    reachable only on the store network, as `cache`. It runs as the image's `redis` user (the official
    image's entrypoint then skips its step down from root), so it needs no capability, and with nothing
    saved it writes nothing (read-only root, a small /tmp)."""
    return ServiceSpec(
        role="cache",
        image=stack.image("cache"),
        memory_mb=CACHE_MEMORY_MB,
        cpus=0.25,
        command=[
            "redis-server",
            "--bind",
            "0.0.0.0",  # noqa: S104 - inside the container, on the store's private network only
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory",
            f"{int(CACHE_MEMORY_MB * CACHE_DATA_SHARE)}mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ],
        healthcheck=CACHE_HEALTHCHECK,
        user="redis",
        read_only=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,noexec,size=16m"},  # noqa: S108 - a tmpfs of the container's own
    )
