"""Settings of the platform the end-to-end benchmark runs (tests/benchmarks/e2e.py): the test settings with
a database, Redis index, nginx and store prefix of its own, Stripe's API at the benchmark's local fake
server, no TLS (the clock stops at the front page over HTTP on the platform name) and no rate limits (ten
sign-ups from one address in a minute are the benchmark, not an attack)."""

import os

_bench = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "var", "bench", "e2e"))
_nginx = os.path.join(_bench, "nginx")
os.environ.setdefault("DATABASE_URL", "mysql://root@127.0.0.1:3306/shophosting_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")
os.environ.setdefault("STORE_OBJECT_PREFIX", "shbench-e2e")
os.environ.setdefault("LOG_DIR", os.path.join(_bench, "log"))
os.environ.setdefault("SECURITY_LOG_PATH", os.path.join(_bench, "security.log"))
os.environ.setdefault("NGINX_COMMAND", f"nginx,-p,{_nginx},-c,{_nginx}/nginx.conf")
os.environ.setdefault("NGINX_PID_FILE", f"{_nginx}/nginx.pid")
os.environ.setdefault("NGINX_SITES_DIR", f"{_nginx}/sites")
os.environ.setdefault("NGINX_ACME_WEBROOT", f"{_nginx}/acme")
os.environ.setdefault("NGINX_LISTEN_HTTP", "127.0.0.1:18190")
os.environ.setdefault("NGINX_LISTEN_HTTPS", "127.0.0.1:18543")
os.environ.setdefault("NGINX_FIREWALL_LOG_DIR", f"{_nginx}/firewall")
os.environ.setdefault("NGINX_ENABLED", "true")
os.environ.setdefault("TLS_ENABLED", "false")
os.environ.setdefault("PLATFORM_DOMAIN", "stores.bench.test")

from shophosting.settings.test import *  # noqa: E402,F403

# The first backup every new store gets runs on a backups worker of the benchmark's own, into a repository
# of its own (the test suite's stays as its tests expect it).
RESTIC_REPOSITORY = os.path.join(_bench, "restic", "repository")
RESTIC_PASSWORD_FILE = os.path.join(_bench, "restic", "password")
RESTIC_CACHE_DIR = os.path.join(_bench, "restic", "cache")
BACKUP_STAGING_DIR = os.path.join(_bench, "restic", "staging")
STRIPE_API_HOST = os.environ.get("BENCH_STRIPE_API_HOST", STRIPE_API_HOST)  # noqa: F405
RATELIMIT_ENABLE = False
# Production's delay (the test settings queue it at once): the benchmark's customers are production's.
FIRST_BACKUP_DELAY_SECONDS = int(os.environ.get("FIRST_BACKUP_DELAY_SECONDS", 120))
