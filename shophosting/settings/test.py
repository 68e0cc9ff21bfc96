"""Tests run against the real MariaDB and Redis on 127.0.0.1 (never SQLite, never a fake cache)."""

import os

from shophosting.core.local_images import use_local_store_images

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DATABASE_URL", "mysql://root@127.0.0.1:3306/shophosting")
# Dedicated Redis database indexes, so a test run never touches a developer's data.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("CREDENTIALS_KEY", "gBo9k6DlouK83RNGJS0SIQQTNTor9HIowlzu2RbYRO0=")

_var_test = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "var", "test"))
os.environ.setdefault("LOG_DIR", os.path.join(_var_test, "log"))
os.environ.setdefault("SECURITY_LOG_PATH", os.path.join(_var_test, "security.log"))
# Staff two-factor is on in production; the tests that need it turn it on (tests/test_admin_staff.py).
os.environ.setdefault("STAFF_TWO_FACTOR_REQUIRED", "false")

use_local_store_images()  # see shophosting/core/local_images.py
os.environ.setdefault("STORE_OBJECT_PREFIX", "shtest-store")
# Nothing outside answers here: WordPress blocks outbound HTTP (tests/test_egress.py lets one store reach its
# stand-in for the internet through STORE_HTTP_ACCESSIBLE_HOSTS).
os.environ.setdefault("STORE_HTTP_BLOCK_EXTERNAL", "true")
# The host check applies the stores' outbound fence on a host when it is managed: tests that want it (egress
# on the second engine, tests/test_egress_hosts.py) turn it on, so other tests' hosts keep their rules as they are.
os.environ.setdefault("EGRESS_MANAGED", "false")
# A private nginx on a loopback port, started by the tests (tests/conftest.py: nginx_server).
_nginx_prefix = os.path.join(os.path.dirname(__file__), "..", "..", "var", "test", "nginx")
_nginx_prefix = os.path.abspath(_nginx_prefix)
os.environ.setdefault("NGINX_COMMAND", f"nginx,-p,{_nginx_prefix},-c,{_nginx_prefix}/nginx.conf")
os.environ.setdefault("NGINX_PID_FILE", f"{_nginx_prefix}/nginx.pid")
os.environ.setdefault("NGINX_SITES_DIR", f"{_nginx_prefix}/sites")
os.environ.setdefault("NGINX_ACME_WEBROOT", f"{_nginx_prefix}/acme")
os.environ.setdefault("NGINX_LISTEN_HTTP", "127.0.0.1:18080")
os.environ.setdefault("NGINX_LISTEN_HTTPS", "127.0.0.1:18443")
os.environ.setdefault("NGINX_FIREWALL_LOG_DIR", f"{_nginx_prefix}/firewall")
os.environ.setdefault("NGINX_AUTH_DIR", f"{_nginx_prefix}/auth")
# Debian's pebble on loopback, started by the tests (tests/conftest.py: acme_server).
_pebble = os.path.abspath(os.path.join(_nginx_prefix, "..", "pebble"))
os.environ.setdefault("ACME_DIRECTORY_URL", "https://127.0.0.1:14000/dir")
os.environ.setdefault("ACME_CA_BUNDLE", f"{_pebble}/ca.pem")
os.environ.setdefault("ACME_ACCOUNT_KEY_PATH", f"{_pebble}/account.pem")
os.environ.setdefault("TLS_CERT_DIR", f"{_pebble}/../tls")
# pebble-challtestsrv is the DNS the proof asks (tests/plugins/acme.py); it answers 127.0.0.1 for every name, so
# the platform's public address is one nothing resolves to unless a test sets it (TEST-NET-1).
os.environ.setdefault("DNS_RESOLVERS", "127.0.0.1:8053")
os.environ.setdefault("DNS_TIMEOUT", "2")
os.environ.setdefault("PLATFORM_PUBLIC_ADDRESSES", "192.0.2.80")

from .base import *  # noqa: E402,F403

DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; production keeps PBKDF2
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Stripe's API is faked at its HTTP boundary (tests/stripe_fake.py, `responses`). Its base URL points at a
# closed loopback port, so a call the fake does not intercept fails at once and never leaves the machine.
STRIPE_TEST_SECRET_KEY = "sk_test_51ShopHostingFakeKeyForTestsOnly0000000000000000000000000000"  # noqa: S105 (fake)
STRIPE_API_HOST = "http://127.0.0.1:9"
# A real restic repository in a scratch directory (tests/conftest.py: restic_repository creates it).
RESTIC_REPOSITORY = str(BASE_DIR / "var" / "test" / "restic" / "repository")  # noqa: F405
RESTIC_PASSWORD_FILE = str(BASE_DIR / "var" / "test" / "restic" / "password")  # noqa: F405
RESTIC_CACHE_DIR = str(BASE_DIR / "var" / "test" / "restic" / "cache")  # noqa: F405
BACKUP_STAGING_DIR = str(BASE_DIR / "var" / "test" / "restic" / "staging")  # noqa: F405
BACKUP_EXPORT_DIR = str(BASE_DIR / "var" / "test" / "restore-exports")  # noqa: F405
BACKUP_TRANSFER_DIR = str(BASE_DIR / "var" / "test" / "restic" / "transfers")  # noqa: F405
TICKET_ATTACHMENT_DIR = str(BASE_DIR / "var" / "test" / "attachments")  # noqa: F405
# Each test rolls the database back while Redis keeps what a page cache stored from it: the marketing pages'
# cache is on only where tests/test_page_cache.py turns it on (with a cleared generation).
PAGE_CACHE_SECONDS = 0
# The staff index's figures are computed on every view in tests (rows roll back, the cache would not);
# tests/test_admin_staff.py turns the sharing on where it tests it.
STAFF_FIGURES_SECONDS = 0
STAFF_LIVE_SECONDS = 0  # likewise; tests/test_page_queries.py turns it on where it tests it
# Off in tests as well, like the two above; tests/test_page_queries.py turns it on where it tests it (each of its
# writes also marks the page stale at once, so inside a test's transaction it would stay correct).
CUSTOMER_PAGE_CACHE_SECONDS = 0
# Tests wait for a new store's first backup as it goes live; tests/test_store_live_hooks.py tests the delay.
FIRST_BACKUP_DELAY_SECONDS = 0
