import json

from django.conf import settings

from provisioning.image_contract import (
    MAGENTO_CLI,
    MAGENTO_ENV_DIR,
    MAGENTO_INSTALLER_NAME,
    MAGENTO_INSTALLER_SMTP_PASSWORD,
    MAGENTO_LISTEN_PORT,
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

WEB_PORT = int(MAGENTO_LISTEN_PORT)  # web listens here; Varnish's backend must match it
# varnishd starts as root, gives its working directory to its own users (CHOWN), runs the cache process
# and the VCL compiler as them (SETUID, SETGID), reaches into that directory as root (DAC_OVERRIDE) and
# signals its children (KILL). Port 80 needs no capability (Docker 20.10 and later).
VARNISH_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "KILL", "SETGID", "SETUID")


# STORE_SMTP_SECURITY in Magento's words (system/smtp/ssl: none | ssl | tls, Magento_Email's SmtpSslType):
# `ssl` is TLS from the first byte (SMTPS), `tls` is STARTTLS.
MAGENTO_SMTP_SSL = {"none": "none", "starttls": "tls", "tls": "ssl"}
# The sender identities Magento mails from (Stores > Configuration > Store Email Addresses).
MAGENTO_SENDER_IDENTITIES = ("general", "sales", "support", "custom1", "custom2")


def magento_mail_environment(domain: str) -> dict[str, str]:
    """Magento 2.4.7's own SMTP transport (system/smtp/*) and sender addresses, as Magento's configuration
    variables (CONFIG__DEFAULT__<PATH>): read at run time, shown locked in the admin, so the platform's relay
    and the store's aligned From cannot drift. The password is not among them: it is a secret file, which the
    installer sets (MagentoStack.install_commands). No relay: nothing, and Magento keeps its sendmail default."""
    if not settings.STORE_SMTP_HOST:
        return {}
    sender = store_mail_from(domain)
    environment = {
        "CONFIG__DEFAULT__SYSTEM__SMTP__DISABLE": "0",
        "CONFIG__DEFAULT__SYSTEM__SMTP__TRANSPORT": "smtp",
        "CONFIG__DEFAULT__SYSTEM__SMTP__HOST": settings.STORE_SMTP_HOST,
        "CONFIG__DEFAULT__SYSTEM__SMTP__PORT": str(settings.STORE_SMTP_PORT),
        "CONFIG__DEFAULT__SYSTEM__SMTP__SSL": MAGENTO_SMTP_SSL[settings.STORE_SMTP_SECURITY],
        "CONFIG__DEFAULT__SYSTEM__SMTP__AUTH": "login" if settings.STORE_SMTP_USER else "none",
        # The envelope sender (Return-Path) is the From address, so SPF checks the store's domain.
        "CONFIG__DEFAULT__SYSTEM__SMTP__SET_RETURN_PATH": "1",
        **{
            f"CONFIG__DEFAULT__TRANS_EMAIL__IDENT_{identity.upper()}__EMAIL": sender
            for identity in MAGENTO_SENDER_IDENTITIES
        },
    }
    if settings.STORE_SMTP_USER:
        environment["CONFIG__DEFAULT__SYSTEM__SMTP__USERNAME"] = settings.STORE_SMTP_USER
        environment["MAGENTO_SMTP_PASSWORD_FILE"] = secret_path(SMTP_PASSWORD_SECRET)
    return environment


# A staging copy's Magento, as configuration variables (CONFIG__DEFAULT__<PATH>): read at run time and locked
# in the admin, and never in the copy's database, so a database push to live carries none of them.
# - Mail: "Disable Email Communications" (system/smtp/disable = 1) rather than an SMTP host that answers
#   nothing. Magento then drops every message before any transport runs (none queued, none retried, no error
#   at checkout), and no relay host or password is given to the container, so nothing leaves even if a module
#   brought its own transport through Magento's. Magento has no built-in capture: messages are not kept.
# - Payments in test mode: Braintree's sandbox environment and PayPal's sandbox flag (the paths of
#   Magento 2.4's bundled PayPal/Braintree modules; not verified here, where Magento cannot be installed).
#   Other gateways keep their configuration.
# - Never indexed: robots meta NOINDEX,NOFOLLOW (nginx sends X-Robots-Tag as for any copy).
MAGENTO_STAGING_ENVIRONMENT = {
    "SHOPHOSTING_STAGING": "1",
    "CONFIG__DEFAULT__SYSTEM__SMTP__DISABLE": "1",
    "CONFIG__DEFAULT__PAYMENT__BRAINTREE__ENVIRONMENT": "sandbox",
    "CONFIG__DEFAULT__PAYPAL__WPP__SANDBOX_FLAG": "1",
    "CONFIG__DEFAULT__DESIGN__SEARCH_ENGINE_ROBOTS__DEFAULT_ROBOTS": "NOINDEX,NOFOLLOW",
}


class MagentoStack(StackSpec):
    """varnish (published) → web:8080 → db, cache (redis), search (OpenSearch)."""

    platform = "magento"
    web_port = 80
    install_name = "Magento setup:install"
    database_user = "magento"
    app_roles = ("web", "varnish")  # Varnish after web: it resolves its backend when it loads the VCL
    admin_login_path = "/admin/"
    admin_login_marker = 'name="login[username]"'

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
                # OpenSearch runs as its own user on port 9200: no capability. Not read-only: it writes its
                # logs and keystore under /usr/share/opensearch, outside the data volume.
                read_only=False,
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
                    "MAGENTO_DB_PASSWORD_FILE": secret_path("db_password"),
                    "MAGENTO_SEARCH_HOST": "search",
                    "MAGENTO_REDIS_HOST": "cache",
                    # The primary name with the scheme the store serves (https once its certificate covers
                    # every name); recreated with the container, as Magento keeps base URLs in its database.
                    "MAGENTO_BASE_URL": f"{self.primary_url}/",
                    "MAGENTO_LISTEN_PORT": str(WEB_PORT),
                    **(MAGENTO_STAGING_ENVIRONMENT if store.staging_of_id else magento_mail_environment(store.domain)),
                },
                # The install's env.php (database, cache, crypt key) in its own volume, kept when an update
                # recreates the container from a newer image (image_contract: MAGENTO_ENV_DIR).
                volumes={"media": "/var/www/html/pub/media", "env": MAGENTO_ENV_DIR},
                healthcheck=tcp_healthcheck(WEB_PORT),
                # Listens on 8080 and needs no capability. Not read-only: Magento writes var/, generated/
                # and pub/static/ inside its own tree (the stand-in writes var/).
                read_only=False,
                secrets={
                    "db_password": creds.get("db_password", ""),
                    **({} if store.staging_of_id else smtp_secrets()),
                },
                secrets_gid=WWW_DATA_GID,
            ),
            ServiceSpec(
                role="varnish",
                image=self.image("varnish"),
                memory_mb=512,
                cpus=0.5,
                environment={"VARNISH_BACKEND_HOST": "web", "VARNISH_BACKEND_PORT": str(WEB_PORT)},
                healthcheck=tcp_healthcheck(80),
                published_port=80,
                cap_add=VARNISH_CAPABILITIES,
                # Not read-only: on a read-only root with tmpfs for its working directory, varnishd's cache
                # process fails to launch ("Child failed on launch"), with every capability above.
                read_only=False,
            ),
        ]

    def install_commands(self, creds: dict[str, str]) -> list[tuple[list[str], dict[str, str]]]:
        """Magento's installer, then the store name: (argument list, exec environment) pairs.

        The admin password goes through the exec's environment to shophosting-magento-install, which hands
        it to setup:install in-process with the database password it reads from the container's secret file
        (MAGENTO_DB_PASSWORD_FILE): a command line is visible to every user of the host (`ps`), an exec's
        environment is not. Values a customer chose are never a token of their own that Magento's console
        could read as an option: they sit inside `--name=value` or after `--`."""
        store = self.store
        options = {
            "base-url": f"{self.primary_url}/",
            "base-url-secure": f"https://{self.primary_name}/",
            "use-secure": "1" if self.url_scheme == "https" else "0",
            "use-secure-admin": "1" if self.url_scheme == "https" else "0",
            "db-host": "db",
            "db-name": "magento",
            "db-user": "magento",
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
        commands = [
            ([MAGENTO_INSTALLER_NAME], {"SHOPHOSTING_MAGENTO_INSTALL": json.dumps(options)}),
            (
                [MAGENTO_CLI, "config:set", "--", "general/store_information/name", store.site_title],
                {},
            ),
        ]
        if settings.STORE_SMTP_HOST and settings.STORE_SMTP_USER:
            # The relay password into env.php (`config:set --lock-env system/smtp/password`, encrypted there
            # by Magento), read by the installer from the container's secret file: never on a command line.
            commands.append(([MAGENTO_INSTALLER_NAME, MAGENTO_INSTALLER_SMTP_PASSWORD], {}))
        return commands

    def url_replace_commands(self, *, old_names: list[str]) -> list[tuple[list[str], dict[str, str]]]:
        """Magento keeps its base URLs in its database (core_config_data): set both to the primary name, as
        setup:install did (`--` first: a value is never read as an option)."""
        return [
            ([MAGENTO_CLI, "config:set", "--", "web/unsecure/base_url", f"{self.primary_url}/"], {}),
            ([MAGENTO_CLI, "config:set", "--", "web/secure/base_url", f"https://{self.primary_name}/"], {}),
        ]

    def upgrade_commands(self) -> list[tuple[list[str], dict[str, str]]]:
        """Magento's schema and data upgrade for the new code; `--keep-generated` keeps the generated code and
        static files the image was built with (the image is the code, so they are current)."""
        return [([MAGENTO_CLI, "setup:upgrade", "--keep-generated"], {})]
