"""Settings shared by every environment. dev/test/prod only override what differs.

Everything configurable comes from the environment through django-environ; `.env.example` lists it.
"""

from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from shophosting.core.mail_relay import store_smtp_settings
from shophosting.core.scrape_access import bearer_token_from_setting, networks_from_setting

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if env.bool("DJANGO_READ_DOT_ENV_FILE", default=False):
    env.read_env(str(BASE_DIR / ".env"))

SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")
# The platform's own domain: stores may not use it or its subdomains.
PLATFORM_DOMAIN = env("PLATFORM_DOMAIN", default="shophosting.local")
# Every store answers at once on <label>.PLATFORM_DOMAIN (a wildcard A record points the zone at the proxy).
# These labels are the platform's own hostnames and never a store's; add any other name you serve there.
PLATFORM_RESERVED_LABELS = env.list(
    "PLATFORM_RESERVED_LABELS",
    default=[
        "www", "admin", "api", "app", "mail", "smtp", "imap", "pop", "mx", "ns1", "ns2", "status",
        "static", "media", "cdn", "portal", "dashboard", "staff", "support", "help", "docs", "blog",
        "billing", "login", "auth", "acme", "autoconfig", "autodiscover", "localhost",
    ],
)  # fmt: skip

# --- Applications -------------------------------------------------------------------------------
DJANGO_APPS = [
    # django.contrib.admin, with the staff site (dashboard, health, logs, audit) as admin.site.
    "shophosting.staff.apps.StaffAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.sitemaps",
]
WAGTAIL_APPS = [
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.contrib.sitemaps",
    "wagtail.contrib.settings",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
]
THIRD_PARTY_APPS = [
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "djstripe",
    "django_rq",
    "axes",
    "csp",
    "django_ratelimit",
]
LOCAL_APPS = [
    "accounts",
    "stores",
    "provisioning",
    "billing",
    "backups",
    "backups.staging",
    "consultations",
    "cms",
    # The project package: platform-wide operator commands (deploy_render, release_status).
    "shophosting",
    "shophosting.status",
]
INSTALLED_APPS = DJANGO_APPS + WAGTAIL_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    # First: every log line of the request (and of the jobs it enqueues) carries its id.
    "shophosting.core.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads the body: refuses oversized requests from Content-Length alone.
    "shophosting.middleware.RequestBodyLimitMiddleware",
    # Anonymous visitors of published marketing pages get a cached copy (cms/page_cache.py): before the
    # session, CSRF and auth middleware, so a hit costs one Redis round trip.
    "cms.page_cache.MarketingPageCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed the second factor.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Customers who turned on two-factor sign-in reach nothing else until the session is verified.
    "accounts.middleware.SecondFactorRequiredMiddleware",
    # Staff on a temporary password reach no admin page but the password change.
    "accounts.middleware.ForcedPasswordChangeMiddleware",
    # After auth and messages: it logs the user out and leaves a message for the login page.
    "shophosting.middleware.IdleTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "shophosting.middleware.PathAwareCSPMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
    # Last, as django-axes asks: it turns a lockout flagged during authentication into its response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "shophosting.urls"
WSGI_APPLICATION = "shophosting.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shophosting.context_processors.site",
                "cms.context_processors.site_menu",
            ],
        },
    },
]

# --- Data ---------------------------------------------------------------------------------------
# MariaDB: the connection collation must equal the database's, or wagtailcore 0075 fails with
# "Illegal mix of collations".
MYSQL_OPTIONS = {"charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"}


def database_from_env(default: str | None = None) -> dict:
    database = env.db("DATABASE_URL", default=default) if default else env.db("DATABASE_URL")
    if database["ENGINE"] == "django.db.backends.mysql":
        database["OPTIONS"] = {**MYSQL_OPTIONS, **database.get("OPTIONS", {})}
        database["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    database["CONN_HEALTH_CHECKS"] = True
    return database


DATABASES = {"default": database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Services own their transactions (STYLE.md 3.1); requests are not wrapped in one.
ATOMIC_REQUESTS = False

REDIS_URL = env("REDIS_URL")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "shophosting",
        "TIMEOUT": 300,
    }
}
# The marketing pages' full-page cache for anonymous visitors (cms/page_cache.py): how long an entry may
# live at most (publishing, unpublishing and plan changes clear it at once); 0 turns it off.
PAGE_CACHE_SECONDS = env.int("PAGE_CACHE_SECONDS", default=300)
PAGE_CACHE_ALIAS = "default"
# A customer's dashboard (stores, last backups, room for another store) is kept per customer and dropped as
# soon as one of those rows changes (shophosting/core/customer_pages.py); this bounds an entry's life; 0: off.
CUSTOMER_PAGE_CACHE_SECONDS = env.int("CUSTOMER_PAGE_CACHE_SECONDS", default=300)
# The staff index's slow figures (MRR, capacity, customers and stores by status, SLA breaches) are computed at
# most this often and shared by all staff (shophosting/staff/selectors.py, dashboard_figures); 0: every view.
STAFF_FIGURES_SECONDS = env.int("STAFF_FIGURES_SECONDS", default=60)
# The staff index's live part (failed and active jobs, queues, open incidents, late tickets) is shared by all
# staff for at most this long, and read afresh after any change staff make (shophosting/staff/selectors.py,
# dashboard_live); 0: read on every view.
STAFF_LIVE_SECONDS = env.int("STAFF_LIVE_SECONDS", default=5)
# Separate queues so a long restic run never delays provisioning.
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": timeout}
    # `pool`: the warm pool's builds (provisioning/pool.py), apart so they never delay a paying customer's job.
    for name, timeout in (("default", 300), ("provisioning", 15 * 60), ("backups", 60 * 60), ("pool", 15 * 60))
}
# Off: django-rq's own admin entry checks only is_staff. The admin index links /django-rq/ instead, which
# needs provisioning.use_rq_dashboard (shophosting/staff/rq_dashboard.py).
RQ_SHOW_ADMIN_LINK = False
# Services enqueue inside transaction.on_commit themselves (STYLE.md), so the queue enqueues at once;
# django-rq's default would defer a second time and return no job id.
RQ = {
    "COMMIT_MODE": "auto",
    "JOB_CLASS": "shophosting.core.request_id.RequestJob",
    "WORKER_CLASS": "shophosting.workers.RegisteringWorker",
}
# A worker whose heartbeat is older than this is reported as down by /healthz. An idle rq worker
# refreshes its heartbeat only every worker_ttl - 15 s (405 s by default), so this must exceed that.
WORKER_HEARTBEAT_MAX_AGE = env.int("WORKER_HEARTBEAT_MAX_AGE", default=480)
# true on a server with the systemd timers of deploy/ (system and code backups, housekeeping): the
# periodic-job runner then leaves those to the timers. The demo (bin/run) has no systemd, so it runs them.
PLATFORM_TIMERS_EXTERNAL = env.bool("PLATFORM_TIMERS_EXTERNAL", default=False)

# --- Outside systems ----------------------------------------------------------------------------
DOCKER_HOST = env("DOCKER_HOST", default="unix:///var/run/docker.sock")
DOCKER_TIMEOUT = env.int("DOCKER_TIMEOUT", default=10)
# The OpenSSH client that reaches ssh:// engines (provisioning/docker_client.py: it runs `docker system
# dial-stdio` on the host with the host's own key and pinned host key; Debian package openssh-client).
DOCKER_SSH_COMMAND = env("DOCKER_SSH_COMMAND", default="ssh")
DOCKER_BASE_IMAGE = env("SHOPHOSTING_BASE_IMAGE", default="shophosting/base:bookworm")
# Where new stores go among the hosts that accept them and have room (stores.services.store_place):
# "spread" (the host with the most free memory first) or "pack" (fill the hosts in order, one before the next;
# the default, and what placement always did: with one host the two are the same).
HOST_PLACEMENT_POLICY = env("HOST_PLACEMENT_POLICY", default="pack")
if HOST_PLACEMENT_POLICY not in ("spread", "pack"):
    raise ImproperlyConfigured(f"HOST_PLACEMENT_POLICY must be spread or pack, not {HOST_PLACEMENT_POLICY!r}")
# Per platform, over HOST_PLACEMENT_POLICY: e.g. "magento=spread" (Magento's big stacks spread over the hosts
# while WooCommerce stores pack), or "woocommerce=pack,magento=spread".
HOST_PLACEMENT_POLICY_BY_PLATFORM = env.dict("HOST_PLACEMENT_POLICY_BY_PLATFORM", default={})
for _platform, _policy in HOST_PLACEMENT_POLICY_BY_PLATFORM.items():
    if _platform not in ("woocommerce", "magento") or _policy not in ("spread", "pack"):
        raise ImproperlyConfigured(
            "HOST_PLACEMENT_POLICY_BY_PLATFORM takes platform=policy pairs (platforms woocommerce, magento; "
            f"policies spread, pack), not {_platform}={_policy}"
        )
# Jobs that touch a host's engine run at most this many at once per host (provisioning/host_slots.py), so a
# busy or slow host never holds every worker; a host's own `job_slots` overrides it. A job whose host has no
# free slot goes back on its queue for HOST_JOB_WAIT_SECONDS (workers run --with-scheduler) and the workers go
# on with other hosts' jobs. MariaDB named locks hold the slots; on SQLite (the demo) nothing is bounded.
HOST_JOB_SLOTS = env.int("HOST_JOB_SLOTS", default=2)
HOST_JOB_WAIT_SECONDS = env.int("HOST_JOB_WAIT_SECONDS", default=5)
# A warm pool build does not start while a paying customer's store is being set up: it goes back on its queue
# for this long (provisioning.kinds.JobKind.orders_ahead).
ORDERS_FIRST_WAIT_SECONDS = env.int("ORDERS_FIRST_WAIT_SECONDS", default=3)
# ... at most this many times (then it runs anyway: a steady stream of orders must not keep the pool empty).
ORDERS_FIRST_MAX_WAITS = env.int("ORDERS_FIRST_MAX_WAITS", default=20)
# Encrypts store credentials at rest: comma-separated Fernet keys, newest first (rotation).
CREDENTIALS_KEY = env("CREDENTIALS_KEY", default="")

STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_TEST_SECRET_KEY = env("STRIPE_TEST_SECRET_KEY", default="")
STRIPE_LIVE_SECRET_KEY = env("STRIPE_LIVE_SECRET_KEY", default="")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# Dunning and lifecycle: days a past-due subscription keeps its stores running, days a canceled
# subscription's stopped stores are kept before teardown, and hours an unpaid signup keeps its domain.
BILLING_GRACE_PERIOD_DAYS = env.int("BILLING_GRACE_PERIOD_DAYS", default=7)
BILLING_CANCELED_RETENTION_DAYS = env.int("BILLING_CANCELED_RETENTION_DAYS", default=30)
BILLING_CHECKOUT_ABANDON_HOURS = env.int("BILLING_CHECKOUT_ABANDON_HOURS", default=24)

EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="ShopHosting <no-reply@shophosting.local>")
SUPPORT_EMAIL = env("SUPPORT_EMAIL", default="support@shophosting.local")

# --- Auth ---------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out client is refused before its password is even checked.
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, loading a session's user and whether it has a second-factor device in one query.
    "accounts.backends.AccountBackend",
]
# Messages live in the session, not in a cookie: a temporary password shown once (when its e-mail failed)
# must never travel in a cookie, signed or not.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

ADMIN_URL = env("DJANGO_ADMIN_URL", default="admin/")
WAGTAIL_ADMIN_URL = "cms-admin/"
WAGTAIL_SITE_NAME = "ShopHosting"
# No avatars from gravatar.com: the admin loads nothing from third parties (and the CSP would block it).
WAGTAIL_GRAVATAR_PROVIDER_URL = None
WAGTAILADMIN_BASE_URL = SITE_URL
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
WAGTAILDOCS_EXTENSIONS = ["csv", "docx", "key", "odt", "pdf", "pptx", "rtf", "txt", "xlsx", "zip"]

# --- Security baseline --------------------------------------------------------------------------
SECURE_HSTS_SECONDS = 31_536_000  # sent on HTTPS responses only
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "shophosting.views.csrf_failure"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
# Customers and staff alike are logged out after this much inactivity (IdleTimeoutMiddleware).
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT_SECONDS", default=30 * 60)
SESSION_COOKIE_AGE = 12 * 60 * 60

# Request bodies above this are refused with 413 before they are read.
REQUEST_BODY_MAX_BYTES = 50 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES

# How many reverse proxies (nginx, a load balancer) sit in front of the app and append to
# X-Forwarded-For. The client IP is the entry that many places from the right; with 0, REMOTE_ADDR.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-src": [NONE],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
    },
}
# Django's and Wagtail's admins use inline scripts and styles, so their prefixes get this policy
# instead (PathAwareCSPMiddleware). Still no third-party origins.
CONTENT_SECURITY_POLICY_ADMIN = {
    "default-src": [SELF],
    "script-src": [SELF, "'unsafe-inline'"],
    "style-src": [SELF, "'unsafe-inline'"],
    "img-src": [SELF, "data:", "blob:"],
    "font-src": [SELF, "data:"],
    "connect-src": [SELF],
    "frame-src": [SELF],
    "frame-ancestors": [SELF],
    "object-src": [NONE],
    "base-uri": [SELF],
    "form-action": [SELF],
}
CSP_ADMIN_PREFIXES = [f"/{ADMIN_URL}", f"/{WAGTAIL_ADMIN_URL}", "/django-rq/"]

AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = 0.5  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"
# The address as accounts store it (lower-cased), so a change of case does not buy fresh attempts.
AXES_USERNAME_CALLABLE = "accounts.lockout.lockout_username"
AXES_CLIENT_IP_CALLABLE = "shophosting.core.client_ip.client_ip"
AXES_LOCKOUT_TEMPLATE = "accounts/lockout.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

RATELIMIT_USE_CACHE = "default"

SILENCED_SYSTEM_CHECKS = [
    # MariaDB cannot enforce conditional unique constraints; Wagtail declares some.
    "models.W036",
]

# --- Static, media, i18n ------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "var" / "static"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ------------------------------------------------------------------------------------
LOG_DIR = Path(env("LOG_DIR", default=str(BASE_DIR / "var" / "log")))
SECURITY_LOG_PATH = Path(env("SECURITY_LOG_PATH", default=str(LOG_DIR / "security.log")))
# Days the rotated log files are kept (deploy/logrotate's `rotate` and `maxage`). They are never rewritten, so
# this is also how long a closed account's address stays in them after it was written (the leave page says so).
LOG_RETENTION_DAYS = env.int("LOG_RETENTION_DAYS", default=30)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "shophosting.core.request_id.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # One JSON object per line in the files (python-json-logger), with the request id.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        # accounts.services.audit_record already writes one JSON object as the message.
        "message": {"format": "%(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "security_file": {
            "class": "shophosting.logging.MakedirsWatchedFileHandler",
            "filename": str(SECURITY_LOG_PATH),
            "formatter": "message",
            "encoding": "utf-8",
        },
        # The files the staff log viewer reads (STAFF_LOG_FILES). Web and workers are separate processes
        # that share them, so they are reopened after logrotate moves them, never rotated in-process.
        **{
            f"{name}_file": {
                "class": "shophosting.logging.MakedirsWatchedFileHandler",
                "filename": str(LOG_DIR / f"{name}.log"),
                "formatter": "json",
                "filters": ["request_id"],
                "encoding": "utf-8",
            }
            for name in ("web", "worker", "backup")
        },
    },
    "loggers": {
        "shophosting.security": {"handlers": ["security_file"], "level": "INFO", "propagate": False},
        "django": {"handlers": ["console", "web_file"], "level": "INFO", "propagate": False},
        "rq.worker": {"handlers": ["console", "worker_file"], "level": "INFO", "propagate": False},
        "provisioning": {"handlers": ["console", "worker_file"], "level": "INFO", "propagate": False},
        "backups": {"handlers": ["console", "backup_file"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console", "web_file"], "level": "WARNING"},
}

# --- Store stacks -------------------------------------------------------------------------------
# Images per platform and service. Production defaults are the official images (the WordPress one is
# built from deploy/images/wordpress-official with wp-cli and WooCommerce); tests use the local ones.
STORE_IMAGES = {
    "woocommerce": {
        "db": env("STORE_IMAGE_MARIADB", default="mariadb:10.11"),
        "cache": env("STORE_IMAGE_REDIS", default="redis:7"),
        "web": env("STORE_IMAGE_WORDPRESS", default="shophosting/wordpress-official:6"),
        "phpmyadmin": env("STORE_IMAGE_PHPMYADMIN", default="phpmyadmin:5.2"),
    },
    "magento": {
        "db": env("STORE_IMAGE_MARIADB", default="mariadb:10.11"),
        "cache": env("STORE_IMAGE_REDIS", default="redis:7"),
        "search": env("STORE_IMAGE_OPENSEARCH", default="opensearchproject/opensearch:2"),
        "web": env("STORE_IMAGE_MAGENTO", default="shophosting/magento:2.4"),
        "varnish": env("STORE_IMAGE_VARNISH", default="varnish:7.1"),
    },
}
# Whether the WordPress image must carry WooCommerce: the install fails when it is missing or does not
# activate. True for the production image (wordpress-official); the local test image has none.
STORE_WOOCOMMERCE_REQUIRED = env.bool("STORE_WOOCOMMERCE_REQUIRED", default=True)
# Prefix of every Docker object of a store (<prefix>-<id>-web) and the value of its shophosting.env label,
# so installations (and the test suite) sharing one engine never touch each other's stores.
STORE_OBJECT_PREFIX = env("STORE_OBJECT_PREFIX", default="shophosting-store")
# Seconds a new store's web service may take to answer before the step fails.
STORE_WEB_READY_TIMEOUT = env.int("STORE_WEB_READY_TIMEOUT", default=120)
# Confinement of every store container (provisioning/README.md, "Limits and confinement").
# Processes per container by service role (threads count: MariaDB runs one per connection, Varnish one per
# worker, OpenSearch's JVM many), so a fork loop in one store stops at its own limit. STORE_PIDS_LIMITS
# overrides single roles, e.g. "web=1024,db=768".
STORE_PIDS_LIMITS = {
    "db": 512,
    "cache": 64,
    "web": 512,
    "phpmyadmin": 128,
    "varnish": 1024,
    "search": 1024,
    **env.dict("STORE_PIDS_LIMITS", cast={"value": int}, default={}),
}
STORE_PIDS_LIMIT_DEFAULT = env.int("STORE_PIDS_LIMIT_DEFAULT", default=256)  # a role not listed above
# The engine's json-file log of each container is rotated: at most MAX_FILE files of MAX_SIZE each.
STORE_LOG_MAX_SIZE = env("STORE_LOG_MAX_SIZE", default="10m")
STORE_LOG_MAX_FILE = env.int("STORE_LOG_MAX_FILE", default=3)
# Every store's outbound mail goes through the platform's SMTP relay (README, "Store mail"): host, port,
# credentials and security (none | starttls | tls) for all stores; From is store@<store domain> unless
# STORE_MAIL_FROM names one sender for all. Checked here, at start-up: a bad value stops the platform with
# the variable's name. An empty STORE_SMTP_HOST: no relay, the stores send no mail.
_store_smtp = store_smtp_settings(env.ENVIRON)
STORE_SMTP_HOST = _store_smtp["STORE_SMTP_HOST"]
STORE_SMTP_PORT = _store_smtp["STORE_SMTP_PORT"]
STORE_SMTP_SECURITY = _store_smtp["STORE_SMTP_SECURITY"]
STORE_SMTP_USER = _store_smtp["STORE_SMTP_USER"]
STORE_SMTP_PASSWORD = _store_smtp["STORE_SMTP_PASSWORD"]
STORE_MAIL_FROM = _store_smtp["STORE_MAIL_FROM"]

# --- Outbound traffic of the stores (provisioning/egress.py; README, "Outbound traffic") -------------------
# The fence: stores reach the internet and nothing private (other stores, the host, private and link-local
# networks). Managed means `manage.py egress_apply` (the root unit shophosting-egress.service) installs it.
EGRESS_MANAGED = env.bool("EGRESS_MANAGED", default=True)
# Exceptions to the blocked ranges, "CIDR" or "CIDR:port" (TCP and UDP), e.g. the platform's SMTP relay on a
# private address: "10.0.0.25:587".
EGRESS_ALLOWED = env.list("EGRESS_ALLOWED", default=[])
# More ranges to block besides the private, link-local, loopback, multicast and reserved ones, e.g. a
# provider's internal services on public addresses.
EGRESS_BLOCKED_EXTRA = env.list("EGRESS_BLOCKED_EXTRA", default=[])
# Ports of the host itself a store may open (TCP): nginx, which the internet reaches anyway, so a store can
# load its own pages (WP-Cron, WooCommerce's background jobs). Every other port of the host is closed to it.
EGRESS_HOST_PORTS = env.list("EGRESS_HOST_PORTS", default=["80", "443"])
# Open port 53 to the host's resolvers (/etc/resolv.conf), which Docker's DNS forwards a store's lookups to.
EGRESS_ALLOW_HOST_RESOLVERS = env.bool("EGRESS_ALLOW_HOST_RESOLVERS", default=True)
# The iptables that dockerd uses (Debian's default is the nf_tables one; "iptables-legacy" if dockerd uses
# that). "-restore" is appended to the last word for the atomic refill.
EGRESS_IPTABLES = env.list("EGRESS_IPTABLES", default=["iptables"])
# The helper that applies the fence on a host through its Docker API (deploy/images/egress: Debian's iptables,
# built by `manage.py images_build egress` on the platform's engine and copied to each host when it lacks it).
EGRESS_IMAGE = env("EGRESS_IMAGE", default="shophosting/egress:local")
# Seconds the helper lives at most: it is removed as soon as its work is done, and exits by itself (and the
# engine removes it) if the process that started it dies first.
EGRESS_HELPER_LIFETIME = env.int("EGRESS_HELPER_LIFETIME", default=120)
# WordPress's own outbound HTTP switch (WP_HTTP_BLOCK_EXTERNAL): off in production, where the fence decides;
# on in development and tests, where nothing outside answers and every call would wait for its timeout.
STORE_HTTP_BLOCK_EXTERNAL = env.bool("STORE_HTTP_BLOCK_EXTERNAL", default=False)
# Hosts WordPress may still call while it blocks (WP_ACCESSIBLE_HOSTS; "*.example.com" wildcards allowed).
STORE_HTTP_ACCESSIBLE_HOSTS = env.list("STORE_HTTP_ACCESSIBLE_HOSTS", default=[])

# --- nginx in front of the stores (provisioning/proxy.py) -----------------------------------------
# Off: stores answer only on their published port (the one-command demo has no nginx).
NGINX_ENABLED = env.bool("NGINX_ENABLED", default=True)
# The nginx command, with -p/-c when it is not the system instance; "-t" and "-s reload" are appended.
NGINX_COMMAND = env.list("NGINX_COMMAND", default=["nginx"])
# Where NGINX_COMMAND's master writes its pid (its `pid` directive). Set, a reload signals the master directly
# while `nginx -t` runs beside it, instead of `nginx -s reload` after the test: each of those parses the whole
# configuration, the firewall's rule set included, about 0.15 s apiece here. Empty: `-t`, then `-s reload`.
NGINX_PID_FILE = env("NGINX_PID_FILE", default="")
NGINX_SITES_DIR = env("NGINX_SITES_DIR", default="/etc/nginx/sites-enabled/shophosting")
NGINX_LISTEN_HTTP = env("NGINX_LISTEN_HTTP", default="80")
# The single template of a store vhost, and the maintenance page suspended stores show.
NGINX_VHOST_TEMPLATE = env("NGINX_VHOST_TEMPLATE", default=str(BASE_DIR / "deploy" / "nginx" / "store-vhost.conf"))
NGINX_MAINTENANCE_ROOT = env("NGINX_MAINTENANCE_ROOT", default=str(BASE_DIR / "deploy" / "nginx" / "maintenance"))
# Production: ask the root unit shophosting-nginx-reload to test and reload nginx (empty: run NGINX_COMMAND).
NGINX_RELOAD_REQUEST_FILE = env("NGINX_RELOAD_REQUEST_FILE", default="")
NGINX_RELOAD_STATUS_FILE = env("NGINX_RELOAD_STATUS_FILE", default="")
NGINX_RELOAD_TIMEOUT = env.int("NGINX_RELOAD_TIMEOUT", default=30)
# The stores' HTTPS protocols and ciphers: the platform's own TLS snippet (provisioning.proxy.tls_policy).
NGINX_TLS_POLICY_FILE = env(
    "NGINX_TLS_POLICY_FILE", default=str(BASE_DIR / "deploy" / "nginx" / "snippets" / "shophosting-tls.conf")
)
NGINX_ACME_WEBROOT = env("NGINX_ACME_WEBROOT", default="/var/www/shophosting-acme")
NGINX_LISTEN_HTTPS = env("NGINX_LISTEN_HTTPS", default="443")
# The firewall of plans with advanced_security (ModSecurity with the OWASP Core Rule Set, blocking): each such
# store's blocked requests go to <dir>/store-<id>.log, one JSON line each (ModSecurity's audit log), which
# the store page counts. Under nginx's log directory; deploy/logrotate rotates it.
NGINX_FIREWALL_LOG_DIR = env("NGINX_FIREWALL_LOG_DIR", default="/var/log/nginx/shophosting")
# The basic-auth user files of staging copies (provisioning.proxy.basic_auth_write), one per store; readable by
# nginx's workers, outside any directory nginx includes as configuration.
NGINX_AUTH_DIR = env("NGINX_AUTH_DIR", default="/etc/nginx/shophosting-auth")
# The store page reads at most this many bytes from the end of a store's firewall logs per view; a store
# blocked more than that shows "at least N".
FIREWALL_LOG_READ_BYTES = env.int("FIREWALL_LOG_READ_BYTES", default=4 * 1024 * 1024)
# Request rate limits of every store's vhost (nginx limit_req, answered with 429): per store and client
# address, and for the whole store, in requests per second, each with the burst it may take at once. The
# rates are the platform's nginx config (render it again with deploy_render and reload nginx); bursts are the
# vhosts' (rewritten with the next job that routes the store).
NGINX_RATE_PER_CLIENT = env.int("NGINX_RATE_PER_CLIENT", default=20)
NGINX_BURST_PER_CLIENT = env.int("NGINX_BURST_PER_CLIENT", default=100)
NGINX_RATE_PER_STORE = env.int("NGINX_RATE_PER_STORE", default=200)
NGINX_BURST_PER_STORE = env.int("NGINX_BURST_PER_STORE", default=400)

# --- TLS for stores (provisioning/acme_client.py) ------------------------------------------------
TLS_ENABLED = env.bool("TLS_ENABLED", default=True)
ACME_DIRECTORY_URL = env("ACME_DIRECTORY_URL", default="https://acme-v02.api.letsencrypt.org/directory")
# A CA bundle for the ACME server's own HTTPS (pebble's test CA in tests); empty: the system's.
ACME_CA_BUNDLE = env("ACME_CA_BUNDLE", default="")
ACME_EMAIL = env("ACME_EMAIL", default="ops@shophosting.local")
ACME_ACCOUNT_KEY_PATH = env("ACME_ACCOUNT_KEY_PATH", default=str(BASE_DIR / "var" / "acme" / "account.pem"))
TLS_CERT_DIR = env("TLS_CERT_DIR", default=str(BASE_DIR / "var" / "tls"))
# Failed issuance (DNS not pointed yet) is retried after 2, 4, 8 … minutes, at most this many seconds apart.
TLS_RETRY_MAX_DELAY = env.int("TLS_RETRY_MAX_DELAY", default=6 * 60 * 60)
# A name whose validation fails this many times in a row is reported on the store page as not pointing at the
# platform and left off the certificate: no retries and renewals in vain (stores/README.md, "Names").
TLS_NAME_MAX_FAILURES = env.int("TLS_NAME_MAX_FAILURES", default=5)

# --- Custom domains (stores/dns.py, stores/README.md "Names") -----------------------------------
# The proxy's public addresses: a custom domain that already resolves only to these is proven without a TXT
# record, and an unreachable one that points here again is served on HTTPS again. Empty: TXT proof only.
PLATFORM_PUBLIC_ADDRESSES = env.list("PLATFORM_PUBLIC_ADDRESSES", default=[])
# Resolvers asked for the proof (ip or ip:port, comma separated); empty: the machine's own (/etc/resolv.conf).
DNS_RESOLVERS = env.list("DNS_RESOLVERS", default=[])
DNS_TIMEOUT = env.float("DNS_TIMEOUT", default=5.0)
# Pending and unreachable names are checked by a periodic job this often (minutes).
DOMAIN_CHECK_INTERVAL_MINUTES = env.int("DOMAIN_CHECK_INTERVAL_MINUTES", default=10)

# --- Backups (backups/restic.py) ----------------------------------------------------------------
# The restic repository: a local path, sftp:user@host:/path or s3:host/bucket; the password file; where
# store dumps and file archives are staged before they go in; restic's cache.
RESTIC_BINARY = env("RESTIC_BINARY", default="restic")
RESTIC_REPOSITORY = env("RESTIC_REPOSITORY", default=str(BASE_DIR / "var" / "backups" / "repository"))
RESTIC_PASSWORD_FILE = env("RESTIC_PASSWORD_FILE", default=str(BASE_DIR / "var" / "backups" / "restic-password"))
RESTIC_CACHE_DIR = env("RESTIC_CACHE_DIR", default=str(BASE_DIR / "var" / "backups" / "cache"))
RESTIC_HOSTNAME = env("RESTIC_HOSTNAME", default="shophosting")
# Namespaces every restic tag, so installations sharing a repository never list or prune each other's
# snapshots (backups/README.md). Empty: a random id made once and kept in the platform database.
BACKUP_INSTALLATION_ID = env("BACKUP_INSTALLATION_ID", default="")
RESTIC_TIMEOUT = env.int("RESTIC_TIMEOUT", default=3600)
BACKUP_STAGING_DIR = env("BACKUP_STAGING_DIR", default=str(BASE_DIR / "var" / "backups" / "staging"))
# The rows a database restore would replace, exported before it (backups/README.md); outside the web root,
# served only by the owner's download view; shared by the backups worker and the web tier.
BACKUP_EXPORT_DIR = env("BACKUP_EXPORT_DIR", default=str(BASE_DIR / "var" / "private" / "restore-exports"))
# Every active store is backed up this often; snapshots are kept this many days (longer on plans with
# the "daily backups" flag); system and code backups are kept BACKUP_SYSTEM_RETENTION_DAYS.
BACKUP_INTERVAL_HOURS = env.int("BACKUP_INTERVAL_HOURS", default=6)
# A new store's first backup is queued this long after it goes live (backups/handlers.py), not at once: a new
# store holds only its fresh install, and in a burst of orders each first backup (restic and a dump, about 1.5 s
# of CPU) would slow the next customer's provisioning (tests/benchmarks/provision.py --burst: 8.3 s -> 6.6 s
# without them). 0 queues it as the store goes live.
FIRST_BACKUP_DELAY_SECONDS = env.int("FIRST_BACKUP_DELAY_SECONDS", default=120)
BACKUP_RETENTION_DAYS = env.int("BACKUP_RETENTION_DAYS", default=14)
BACKUP_RETENTION_DAYS_DAILY_PLANS = env.int("BACKUP_RETENTION_DAYS_DAILY_PLANS", default=30)
BACKUP_SYSTEM_RETENTION_DAYS = env.int("BACKUP_SYSTEM_RETENTION_DAYS", default=30)
# Taking a store away and bringing one in (backups/README.md, "Downloads and imports"): prepared downloads and
# uploads live under BACKUP_TRANSFER_DIR; a download link works for BACKUP_DOWNLOAD_LINK_MINUTES, the prepared
# archives are removed BACKUP_DOWNLOAD_KEEP_HOURS after they were made, and uploads nobody imported after
# BACKUP_IMPORT_UPLOAD_KEEP_HOURS. An upload arrives in chunks of at most BACKUP_IMPORT_CHUNK_BYTES.
BACKUP_TRANSFER_DIR = env("BACKUP_TRANSFER_DIR", default=str(BASE_DIR / "var" / "backups" / "transfers"))
BACKUP_DOWNLOAD_LINK_MINUTES = env.int("BACKUP_DOWNLOAD_LINK_MINUTES", default=15)
BACKUP_DOWNLOAD_KEEP_HOURS = env.int("BACKUP_DOWNLOAD_KEEP_HOURS", default=24)
BACKUP_IMPORT_UPLOAD_KEEP_HOURS = env.int("BACKUP_IMPORT_UPLOAD_KEEP_HOURS", default=24)
BACKUP_IMPORT_CHUNK_BYTES = env.int("BACKUP_IMPORT_CHUNK_BYTES", default=8 * 1024 * 1024)

# Store care (provisioning/care, README "Store care"): every live store gets a round of read-only checks once
# per interval, in a slot of its own; CARE_INCIDENT_THRESHOLD failing rounds in a row open an incident, which
# mails the merchant and CARE_STAFF_EMAILS and POSTs JSON to CARE_WEBHOOK_URL (a chat tool's incoming webhook).
CARE_CHECK_INTERVAL_MINUTES = env.int("CARE_CHECK_INTERVAL_MINUTES", default=5)
CARE_INCIDENT_THRESHOLD = env.int("CARE_INCIDENT_THRESHOLD", default=3)
CARE_PAGE_BUDGET_SECONDS = env.float("CARE_PAGE_BUDGET_SECONDS", default=5.0)
CARE_HISTORY_DAYS = env.int("CARE_HISTORY_DAYS", default=90)  # then downsampled to hourly rows
CARE_WEBHOOK_URL = env("CARE_WEBHOOK_URL", default="")
CARE_STAFF_EMAILS = env.list("CARE_STAFF_EMAILS", default=[])
# A certificate with fewer days left fails its check (renewal runs 30 days ahead: see stores_tls_renew).
CARE_CERTIFICATE_MIN_DAYS = env.int("CARE_CERTIFICATE_MIN_DAYS", default=14)
# A store's last successful backup older than this fails its backup check.
CARE_BACKUP_MAX_AGE_HOURS = env.int("CARE_BACKUP_MAX_AGE_HOURS", default=2 * BACKUP_INTERVAL_HOURS + 1)
# More paths for the daily system backup, comma separated (nginx sites, certificates and .env are included).
SYSTEM_BACKUP_EXTRA_PATHS = env.list("SYSTEM_BACKUP_EXTRA_PATHS", default=[])
# The server's env file (deploy/README.md: /etc/shophosting/env), in the system backup: it holds the keys that
# decrypt store credentials. Empty: only a .env in the checkout.
PLATFORM_ENV_FILE = env("PLATFORM_ENV_FILE", default="")

# --- Support tickets ----------------------------------------------------------------------------
# Attachments live here, outside the web root and MEDIA_ROOT; only the download view serves them.
TICKET_ATTACHMENT_DIR = env("TICKET_ATTACHMENT_DIR", default=str(BASE_DIR / "var" / "private" / "attachments"))
# Totals (bytes) a ticket's and a customer's attachments may reach; each file is at most 10 MB besides.
TICKET_ATTACHMENT_QUOTA_PER_TICKET = 50 * 1024 * 1024
TICKET_ATTACHMENT_QUOTA_PER_CUSTOMER = 250 * 1024 * 1024

# --- Consultations ------------------------------------------------------------------------------
# Sales gets consultation requests; calls are booked on these weekdays (0 = Monday) and hours, in this zone.
SALES_EMAIL = env("SALES_EMAIL", default="sales@shophosting.local")
CONSULTATION_TIMEZONE = env("CONSULTATION_TIMEZONE", default="America/New_York")
CONSULTATION_DAYS = [int(day) for day in env.list("CONSULTATION_DAYS", default=["0", "1", "2", "3", "4"])]
CONSULTATION_HOURS = tuple(int(hour) for hour in env.list("CONSULTATION_HOURS", default=["9", "17"]))

# Two-factor sign-in: the issuer name shown in authenticator apps.
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="ShopHosting")
# Staff must set up an authenticator before any admin page opens (customers choose for themselves).
STAFF_TWO_FACTOR_REQUIRED = env.bool("STAFF_TWO_FACTOR_REQUIRED", default=True)

# --- Metrics for Prometheus (shophosting/metrics.py; README, "Monitoring") ------------------------------
# /metrics answers only clients in these networks (CIDR or single addresses, comma separated; the client as
# shophosting.core.client_ip finds it behind TRUSTED_PROXY_COUNT proxies) or requests that send
# `Authorization: Bearer <METRICS_BEARER_TOKEN>`. Everyone else gets the plain 404 of a missing page. Both
# empty (the default): the endpoint is closed. A bad network or a short token stops the start-up.
METRICS_ALLOWED_NETWORKS = networks_from_setting(
    "METRICS_ALLOWED_NETWORKS", env.list("METRICS_ALLOWED_NETWORKS", default=[])
)
METRICS_BEARER_TOKEN = bearer_token_from_setting("METRICS_BEARER_TOKEN", env("METRICS_BEARER_TOKEN", default=""))

# --- Public status page (shophosting/status; README, "Staff admin") -----------------------------------
# Off by default: publishing the platform's state is the operator's decision. On, /status/ shows each platform
# component's state from the notices staff publish in the admin, and notices closed in the last
# STATUS_PAGE_RECENT_DAYS. Never a store or a customer.
STATUS_PAGE_ENABLED = env.bool("STATUS_PAGE_ENABLED", default=False)
STATUS_PAGE_CACHE_SECONDS = env.int("STATUS_PAGE_CACHE_SECONDS", default=30)
STATUS_PAGE_RECENT_DAYS = env.int("STATUS_PAGE_RECENT_DAYS", default=14)

# --- Staff admin --------------------------------------------------------------------------------
# The log viewer shows these files and nothing else; a request names a key, never a path.
STAFF_LOG_FILES = {
    "web": str(LOG_DIR / "web.log"),
    "worker": str(LOG_DIR / "worker.log"),
    "security": str(SECURITY_LOG_PATH),
    "backup": str(LOG_DIR / "backup.log"),
}
# The health page shows the free space where these live; below this share free, it warns.
STAFF_DISK_PATHS = {
    "data (media, attachments)": str(MEDIA_ROOT),
    "backup repository": RESTIC_REPOSITORY,
    "backup staging": BACKUP_STAGING_DIR,
    "restore exports": BACKUP_EXPORT_DIR,
    "logs": str(LOG_DIR),
}
STAFF_DISK_FREE_WARN_RATIO = 0.15
