import time
from urllib.parse import quote

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.services import audit_record

# The stored activity stamp is refreshed at most this often, so a busy session is not rewritten
# on every request; the timeout is therefore exact to within this many seconds.
ACTIVITY_WRITE_INTERVAL = 60


def is_staff_path(path: str) -> bool:
    """The admins' prefixes: which login page and which CSP a path gets. Never an access decision: the staff
    gates (accounts/middleware.py) apply to every path, since customer data is shown outside these too."""
    return path.startswith((f"/{settings.ADMIN_URL}", f"/{settings.WAGTAIL_ADMIN_URL}", "/django-rq/"))


class RequestBodyLimitMiddleware:
    """Refuses a request whose declared body exceeds REQUEST_BODY_MAX_BYTES, before it is read.

    Bodies without a Content-Length (chunked) are bounded by Django's DATA_UPLOAD_MAX_MEMORY_SIZE and
    by nginx's client_max_body_size in deploy/.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return render(request, "400.html", {"reason": "The Content-Length header is not a number."}, status=400)
        if length > settings.REQUEST_BODY_MAX_BYTES:
            limit_mb = settings.REQUEST_BODY_MAX_BYTES // (1024 * 1024)
            return render(request, "413.html", {"limit_mb": limit_mb}, status=413)
        return self.get_response(request)


class IdleTimeoutMiddleware:
    """Logs out customers and staff after SESSION_IDLE_TIMEOUT seconds without a request.

    The next request lands on the matching login page with a message, and the timeout is audited.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            last_activity = request.session.get("last_activity")
            if last_activity is not None and now - last_activity > settings.SESSION_IDLE_TIMEOUT:
                return self._timed_out(request, idle_seconds=now - last_activity)
            if last_activity is None or now - last_activity >= ACTIVITY_WRITE_INTERVAL:
                request.session["last_activity"] = now
        return self.get_response(request)

    def _timed_out(self, request: HttpRequest, *, idle_seconds: int) -> HttpResponse:

        audit_record(event="idle_timeout", request=request, actor=request.user, idle_seconds=idle_seconds)
        logout(request)
        minutes = settings.SESSION_IDLE_TIMEOUT // 60
        messages.info(request, f"You were signed out after {minutes} minutes without activity. Please sign in again.")
        if request.path.startswith(f"/{settings.WAGTAIL_ADMIN_URL}"):
            login_url = reverse("wagtailadmin_login")
        elif is_staff_path(request.path):
            login_url = reverse("admin:login")
        else:
            login_url = reverse(settings.LOGIN_URL)
        next_url = request.get_full_path() if request.method == "GET" else ""
        return redirect(f"{login_url}?next={quote(next_url)}" if next_url else login_url)


class PathAwareCSPMiddleware(CSPMiddleware):
    """django-csp with one exception: the admin prefixes get CONTENT_SECURITY_POLICY_ADMIN.

    Django's and Wagtail's admins rely on inline scripts, which a nonce policy would block (a nonce in
    script-src makes browsers ignore 'unsafe-inline'). Every other page keeps the strict nonce policy.
    """

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only and is_staff_path(request.path_info) and parts.config is None:
            parts.config = settings.CONTENT_SECURITY_POLICY_ADMIN
            parts.nonce = None
        return parts
