"""Local development and the one-command demo (`bin/run`): embedded defaults where they serve."""

import os
from pathlib import Path

from shophosting.core.local_images import use_local_store_images

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Defaults applied before base reads the environment, so a bare `bin/run` works with nothing set.
os.environ.setdefault("DJANGO_SECRET_KEY", "dev-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
# The private redis-server that bin/run starts (RUN_REDIS_PORT), so manage.py commands run beside it
# reach the same queues as its worker.
os.environ.setdefault("REDIS_URL", f"redis://127.0.0.1:{os.environ.get('RUN_REDIS_PORT', '6390')}/0")
# A fixed Fernet key for demo data only; production refuses to start without its own.
os.environ.setdefault("CREDENTIALS_KEY", "gBo9k6DlouK83RNGJS0SIQQTNTor9HIowlzu2RbYRO0=")
use_local_store_images()  # see shophosting/core/local_images.py
os.environ.setdefault("STORE_OBJECT_PREFIX", "shdev-store")
os.environ.setdefault("NGINX_ENABLED", "false")
# Store names under localhost: browsers resolve *.localhost to the loopback address, so with the demo proxy
# bin/run starts (an nginx of its own on RUN_PROXY_PORT, no root needed; it sets NGINX_ENABLED=true) every
# store is at http://<label>.localhost:<port>/, one click from its store page.
os.environ.setdefault("PLATFORM_DOMAIN", "localhost")
_demo_proxy = BASE_DIR / "var" / "nginx"
os.environ.setdefault("NGINX_COMMAND", f"nginx,-p,{_demo_proxy},-c,{_demo_proxy}/nginx.conf")
os.environ.setdefault("NGINX_SITES_DIR", f"{_demo_proxy}/sites")
os.environ.setdefault("NGINX_ACME_WEBROOT", f"{_demo_proxy}/acme")
os.environ.setdefault("NGINX_FIREWALL_LOG_DIR", f"{_demo_proxy}/firewall")
os.environ.setdefault("NGINX_AUTH_DIR", f"{_demo_proxy}/auth")
os.environ.setdefault("NGINX_LISTEN_HTTP", f"127.0.0.1:{os.environ.get('RUN_PROXY_PORT', '8081')}")
os.environ.setdefault("TLS_ENABLED", "false")
os.environ.setdefault("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# The demo's staff sign in with a password alone; production requires an authenticator app.
os.environ.setdefault("STAFF_TWO_FACTOR_REQUIRED", "false")
# The demo leaves the host's firewall alone (EGRESS_MANAGED=true and bin/run, as root, installs the fence), and
# WordPress makes no outbound call: nothing outside answers on most development machines.
os.environ.setdefault("EGRESS_MANAGED", "false")
os.environ.setdefault("STORE_HTTP_BLOCK_EXTERNAL", "true")
# The demo asks no DNS server outside this machine: custom domains typed into it stay waiting for their proof
# ("DNS did not answer"), and the platform names under localhost need none. Set DNS_RESOLVERS to a resolver
# to prove real domains from a development machine.
os.environ.setdefault("DNS_RESOLVERS", "127.0.0.1:53")
os.environ.setdefault("DNS_TIMEOUT", "1")  # nothing answers there: say so at once

from .base import *  # noqa: E402,F403

DEBUG = env.bool("DJANGO_DEBUG", default=True)  # noqa: F405
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])  # noqa: F405
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
