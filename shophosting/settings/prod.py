"""Production: no defaults for secrets. Start-up fails, naming the variable, when one is missing."""

import os
import re

from django.core.exceptions import ImproperlyConfigured

# Values copied from .env.example or docs that must never reach production.
PLACEHOLDERS = {"", "change-me", "changeme", "placeholder", "secret", "xxx", "todo"}


def required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if value.lower() in PLACEHOLDERS or value.lower().startswith("change-me"):
        raise ImproperlyConfigured(f"{name} must be set to a real value in production (it is missing or a placeholder)")
    return value


required("DJANGO_SECRET_KEY")
if not required("DATABASE_URL").startswith(("mysql://", "mysql2://", "mysqlgis://")):
    raise ImproperlyConfigured("DATABASE_URL must be a MySQL/MariaDB URL (mysql://user:pass@host:3306/name)")
required("REDIS_URL")
required("CREDENTIALS_KEY")
# Stores may not take the platform's own domain or its subdomains (stores/domains.py): base.py's
# "shophosting.local" fallback would leave the real one unprotected.
_platform_domain = required("PLATFORM_DOMAIN").lower()
if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]*[a-z][a-z0-9-]*", _platform_domain):
    raise ImproperlyConfigured(
        "PLATFORM_DOMAIN must be a domain name such as shophosting.example.com (no scheme, port or path)"
    )

from .base import *  # noqa: E402,F403

PLATFORM_DOMAIN = _platform_domain

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)  # noqa: F405
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)  # noqa: F405
if not SECURE_HSTS_PRELOAD:
    # Off by choice, not by oversight: submitting a domain to the browsers' preload list is hard to undo and
    # is the operator's decision (README, "Deploy checks"). So `check --deploy` stays clean without it.
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "security.W021"]  # noqa: F405
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# Behind the platform's own nginx by default.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1)  # noqa: F405
