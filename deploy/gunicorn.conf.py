"""gunicorn for ShopHosting (shophosting-web.service). Everything can be overridden from the env file."""

import json
import multiprocessing
import os
import traceback

from gunicorn.glogging import Logger

# A unix socket that only nginx can reach (its group owns the setgid run directory, deploy/tmpfiles); or
# 127.0.0.1:PORT.
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


class JsonAccessLogger(Logger):
    """Request lines as JSON built with json.dumps, never with a %-format: headers and the decoded path are
    the client's words, and a `"` or a line break in them must not end the string or forge another line."""

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        status = str(atoms["s"])
        line = {
            "time": atoms["t"],
            "request_id": atoms.get("{x-request-id}i", "-"),
            "remote": atoms.get("{x-forwarded-for}i", "-"),
            "method": atoms["m"],
            "path": atoms["U"],
            "status": int(status) if status.isdigit() else status,
            "bytes": atoms["B"],
            "duration_ms": atoms["M"],
            "referer": atoms["f"],
            "user_agent": atoms["a"],
        }
        try:
            self.access_log.info("%s", json.dumps(line, ensure_ascii=True))  # ASCII: no U+2028 surprises either
        except Exception:  # noqa: BLE001 - gunicorn's own access() does the same: a log line never fails a request
            self.error(traceback.format_exc())


# Request lines go to the journal as JSON, with nginx's request id (X-Request-ID) to follow one request
# into the application log and the jobs it enqueued.
accesslog = "-"
logger_class = JsonAccessLogger
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
proc_name = "shophosting-web"
# The header nginx sets; gunicorn trusts it only from the local proxy.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
