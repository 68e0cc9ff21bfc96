"""The product's rate limits, in one table, applied with django-ratelimit on the shared Redis cache.

A blocked request gets HTTP 429 with a friendly page and a Retry-After header, and an audit event.
Requests are counted per real client IP (shophosting.core.client_ip), never per proxy address.
"""

from functools import wraps

from django.shortcuts import render
from django_ratelimit.core import get_usage

from shophosting.core.audit import audit
from shophosting.core.client_ip import client_ip_key

# group -> every rate that applies to it; a request is blocked when any of them is exceeded.
RATE_LIMITS: dict[str, tuple[str, ...]] = {
    "customer_login": ("5/m", "20/h"),
    "staff_login": ("3/m", "10/h"),
    "signup": ("10/h",),
    "contact": ("5/h",),
    "consultation": ("5/h",),
    "backup": ("3/h",),
    # Staging copies made, refreshed, pushed and undone: a merchant trying a change pushes and undoes several
    # times an hour, and each is one job at a time per store anyway (stores/operations.py).
    "staging": ("10/h",),
    "backup_pages": ("30/m", "300/h"),  # the backups list, restore confirmation and progress pages
    "import_upload": ("240/m",),  # a store import's upload announcements and chunks (8 MB each by default)
    "job_progress": ("90/m",),  # a job's progress JSON (the store page and job pages poll it every 2 s)
    "ticket_post": ("5/m", "30/h"),  # new tickets and customer replies, with their attachments; per account
    "account_leaving": ("10/h",),  # account data exports and close attempts (a password is checked)
    "domains": ("20/m", "200/h"),  # custom domains added, checked in DNS, made primary, removed; per account
}

HUMAN_NAMES = {
    "customer_login": "sign-in attempts",
    "staff_login": "staff sign-in attempts",
    "signup": "sign-ups",
    "contact": "contact messages",
    "consultation": "consultation requests",
    "backup": "backup and restore requests",
    "staging": "staging requests",
    "backup_pages": "backup page views",
    "import_upload": "upload chunks",
    "job_progress": "progress checks",
    "ticket_post": "support messages",
    "account_leaving": "account exports and close attempts",
    "domains": "domain changes and checks",
}

# Budgets of FAILED attempts per account (not per IP or session): a new session, address or device does
# not reset them, and the account's owner is not slowed down by their own successes.
FAILURE_LIMITS: dict[str, tuple[str, ...]] = {
    # Two-factor codes: the code page, enrolment confirm, and the code asked before disabling or replacing.
    "two_factor_code": ("5/15m", "20/d"),
}


def rate_limited(group: str, methods: tuple[str, ...] = ("POST",), key=client_ip_key):
    """Decorate a view so that `methods` requests count against RATE_LIMITS[group], per `key` (a
    django-ratelimit key: the client IP by default; "user" counts per signed-in account)."""
    rates = RATE_LIMITS[group]

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method in methods:
                # Count against every window first, so the hourly window sees every attempt.
                usages = [
                    get_usage(
                        request,
                        group=f"{group}:{rate}",
                        key=key,
                        rate=rate,
                        method=list(methods),
                        increment=True,
                    )
                    for rate in rates
                ]
                blocked = [
                    (rate, usage) for rate, usage in zip(rates, usages, strict=True) if usage and usage["should_limit"]
                ]
                if blocked:
                    return too_many_requests(
                        request, group=group, rate=blocked[0][0], retry_after=blocked[0][1]["time_left"]
                    )
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def too_many_requests(request, *, group: str, rate: str, retry_after: int):
    audit(event="rate_limited", request=request, limit=group, rate=rate)
    response = render(
        request,
        "429.html",
        {"what": HUMAN_NAMES.get(group, "requests"), "retry_after_minutes": max(1, round(retry_after / 60))},
        status=429,
    )
    response["Retry-After"] = str(max(1, retry_after))
    return response


def failures_exhausted(request, *, group: str, key: str) -> int | None:
    """Seconds until `key` may try again when it has used up a budget of FAILURE_LIMITS[group], else None."""
    for rate in FAILURE_LIMITS[group]:
        usage = get_usage(request, group=f"{group}:{rate}", key=lambda _g, _r: key, rate=rate, increment=False)
        if usage and usage["count"] >= usage["limit"]:
            return max(1, usage["time_left"])
    return None


def failure_count(request, *, group: str, key: str) -> None:
    """Count one failed attempt of `key` against every budget of FAILURE_LIMITS[group]."""
    for rate in FAILURE_LIMITS[group]:
        get_usage(request, group=f"{group}:{rate}", key=lambda _g, _r: key, rate=rate, increment=True)
