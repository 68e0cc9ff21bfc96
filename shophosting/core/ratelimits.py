"""The product's rate limits, in one table, applied with django-ratelimit on the shared Redis cache; and the
budgets of failed attempts per account (FAILURE_LIMITS), kept as sliding windows in the same cache.

A blocked request gets HTTP 429 with a friendly page and a Retry-After header, and an audit event.
Requests are counted per real client IP (shophosting.core.client_ip), never per proxy address.
"""

import math
import time
from functools import wraps

from django.conf import settings
from django.core.cache import caches
from django.shortcuts import render
from django_ratelimit.core import _split_rate, get_usage

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
# not reset them, and the account's owner is not slowed down by their own successes. Sliding windows over a
# log of failure times in the same cache (failures_exhausted), not django-ratelimit's fixed windows.
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


def _longest_period(group: str) -> int:
    """Seconds of FAILURE_LIMITS[group]'s longest budget: how long a failure counts at all."""
    # django-ratelimit's own reading of a rate ("5/15m" -> (5, 900)), so both tables mean the same thing.
    return max(_split_rate(rate)[1] for rate in FAILURE_LIMITS[group])


def _failure_cache():
    return caches[settings.RATELIMIT_USE_CACHE]


def _failure_key(group: str, key: str) -> str:
    return f"failures:{group}:{key}"


def _recent_failures(group: str, key: str, now: float) -> list[float]:
    """When `key`'s failures of `group` happened, oldest first, within the longest budget's period."""
    oldest = now - _longest_period(group)
    return sorted(moment for moment in _failure_cache().get(_failure_key(group, key), []) if moment > oldest)


def failures_exhausted(*, group: str, key: str) -> int | None:
    """Seconds until `key` may try again when it has used up a budget of FAILURE_LIMITS[group], else None.

    Sliding windows: a budget counts the failures of the last period, whatever the clock says. Fixed windows
    (django-ratelimit's) give a guesser a fresh budget at each boundary, so up to twice the limit in a moment.
    RATELIMIT_ENABLE does not turn these off: they guard accounts, not the server's load."""
    now = time.time()
    failures = _recent_failures(group, key, now)
    waits = []
    for rate in FAILURE_LIMITS[group]:
        limit, period = _split_rate(rate)
        in_period = [moment for moment in failures if moment > now - period]
        if len(in_period) >= limit:
            # Trying again is allowed once the period holds one failure fewer than the limit.
            waits.append(max(1, math.ceil(in_period[-limit] + period - now)))
    return max(waits, default=None)  # every budget used up must have room again


def failure_count(*, group: str, key: str) -> None:
    """Count one failed attempt of `key` against every budget of FAILURE_LIMITS[group]. Callers serialise the
    attempts of one key (two_factor holds the account's row lock), so this read-then-write loses no failure."""
    now = time.time()
    failures = [*_recent_failures(group, key, now), now]
    _failure_cache().set(_failure_key(group, key), failures, timeout=_longest_period(group))
