"""One id per request, in every log line it causes, including the jobs it enqueues.

nginx sets X-Request-ID ($request_id); without it (runserver, tests) a new id is made. The id is kept in a
context variable, added to log records by RequestIdFilter, stored in each RQ job's meta when the job is
created, and restored while a worker performs it."""

import re
import uuid
from contextvars import ContextVar

from rq.job import Job

current: ContextVar[str] = ContextVar("request_id", default="")
_VALID = re.compile(r"[A-Za-z0-9-]{8,64}")  # fullmatch: `$` would let a trailing line break through


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get("X-Request-ID", "")
        request_id = offered if _VALID.fullmatch(offered) else uuid.uuid4().hex
        request.request_id = request_id
        # Not reset on the way out: Django logs the response (django.request: 404s, 500s) after the middleware
        # chain has returned, and that line belongs to this request too. The next request sets its own.
        current.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class RequestIdFilter:
    """Adds `request_id` to every record ("-" outside a request or a job)."""

    def filter(self, record):
        record.request_id = current.get() or "-"
        return True


class RequestJob(Job):
    """An RQ job that remembers the request it was enqueued in (settings.RQ["JOB_CLASS"])."""

    @classmethod
    def create(cls, *args, meta=None, **kwargs):
        meta = dict(meta or {})
        if current.get():
            meta.setdefault("request_id", current.get())
        return super().create(*args, meta=meta, **kwargs)

    def perform(self):
        token = current.set(self.meta.get("request_id") or f"job-{self.id}")
        try:
            return super().perform()
        finally:
            current.reset(token)
