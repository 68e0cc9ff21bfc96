"""gunicorn for ShopHosting (shophosting-web.service). Everything can be overridden from the env file."""

import multiprocessing
import os

# A unix socket that only nginx (in the shophosting group) can reach; or 127.0.0.1:PORT.
bind = os.environ.get("GUNICORN_BIND", "unix:/run/shophosting/gunicorn.sock")
umask = 0o007
workers = int(os.environ.get("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 9)))
threads = int(os.environ.get("GUNICORN_THREADS", 2))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so a slow leak never becomes an outage.
max_requests = 2000
max_requests_jitter = 200
# Request lines go to the journal as JSON, with nginx's request id (X-Request-ID) to follow one request
# into the application log and the jobs it enqueued.
accesslog = "-"
access_log_format = (
    '{"time": "%(t)s", "request_id": "%({x-request-id}i)s", "remote": "%({x-forwarded-for}i)s", '
    '"method": "%(m)s", "path": "%(U)s", "status": %(s)s, "bytes": "%(B)s", "duration_ms": %(M)s}'
)
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
proc_name = "shophosting-web"
# The header nginx sets; gunicorn trusts it only from the local proxy.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
