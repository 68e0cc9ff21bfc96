"""Every product limit: the request at limit + 1 gets 429, a friendly page, and an audit line.

The clock is frozen at the start of a fresh rate-limit window (django-ratelimit staggers windows per
key), and moved by whole minutes where an hourly limit needs more than one minute's worth of requests.
"""

from datetime import timedelta

import pytest
import time_machine
from django_ratelimit.core import _split_rate

from accounts.models import AuditEvent
from consultations.models import ConsultationRequest, ContactMessage
from shophosting.core.ratelimits import RATE_LIMITS
from tests.consultation_slots import business_slot
from tests.ratelimit_windows import CLIENT_IP, fresh_window_start

# /contact/ is the CMS contact page.
pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls"), pytest.mark.usefixtures("site_pages")]


def login_payload(n):
    return {"username": f"nobody{n}@example.com", "password": "wrong password"}


def contact_payload(n):
    return {"name": "Ada", "email": "ada@example.com", "subject": f"Question {n}", "message": "Hello"}


def consultation_payload(n):
    return {"name": "Ada", "email": "ada@example.com", "platform": "magento", "message": f"Call {n}", **SLOT}


def ticket_payload(n):
    return {"category": "technical", "subject": f"Ticket {n}", "body": "The shop is slow."}


SLOT = business_slot(days_ahead=10)
ENDPOINTS = {
    "customer_login": ("/accounts/login/", login_payload),
    "staff_login": ("/admin/login/", login_payload),
    "signup": ("/signup/woocommerce-commerce-core/", lambda n: {}),
    "contact": ("/contact/", contact_payload),
    "consultation": ("/consultation/", consultation_payload),
    "backup": ("/test-only/backup/", lambda n: {}),
    "ticket_post": ("/support/new/", ticket_payload),
    "backup_pages": ("/test-only/backup-pages/", lambda n: {}),
    "job_progress": ("/test-only/job-progress/", lambda n: {}),
    "account_leaving": ("/accounts/leave/", lambda n: {"password": f"wrong guess {n}", "understood": "on"}),
    "domains": ("/test-only/domains/", lambda n: {}),
    "import_upload": ("/test-only/import-upload/", lambda n: {}),
    # The real staging view, signed in: the limit counts before the store is looked up (404 here).
    "staging": ("/stores/999999/staging/push/", lambda n: {"scope": "database"}),
}
# Counted per signed-in account (the key is the user's id), not per address.
PER_ACCOUNT = {"ticket_post", "account_leaving", "domains"}
SIGNED_IN = {"staging"}  # counted per address, but only a signed-in merchant reaches the view
READS = {"backup_pages", "job_progress"}  # pages whose GETs are limited (backups/views.py, provisioning/views.py)
CASES = [(group, rate) for group, rates in RATE_LIMITS.items() for rate in rates]


def test_every_limit_has_an_endpoint_under_test():
    assert set(ENDPOINTS) == set(RATE_LIMITS)


@pytest.mark.parametrize(("group", "rate"), CASES, ids=[f"{g}-{r}" for g, r in CASES])
def test_request_after_the_limit_gets_429_and_is_audited(client, group, rate, security_log, user_factory):
    path, payload = ENDPOINTS[group]
    key = CLIENT_IP
    if group in PER_ACCOUNT | SIGNED_IN:
        user = user_factory()
        client.force_login(user)
        key = str(user.pk) if group in PER_ACCOUNT else CLIENT_IP
    limit, period = _split_rate(rate)
    # Requests per minute that stay under every shorter window of the same group.
    per_minute = min(
        [limit] + [_split_rate(other)[0] for other in RATE_LIMITS[group] if _split_rate(other)[1] < period]
    )
    with time_machine.travel(fresh_window_start(rate, key), tick=False) as clock:
        for n in range(limit + 1):
            if n and n % per_minute == 0 and per_minute < limit:
                clock.shift(timedelta(seconds=60))  # a new minute window; the longer window keeps counting
            response = (client.get if group in READS else client.post)(path, payload(n))
            if n < limit:
                assert response.status_code != 429, f"request {n + 1} of {limit} was blocked"
        blocked = response

    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) >= 1
    assert b"Too many" in blocked.content and b"try again" in blocked.content
    event = AuditEvent.objects.get(event="rate_limited")
    assert event.detail == {"limit": group, "rate": rate}
    assert event.ip_address == CLIENT_IP
    assert [line for line in security_log() if line["event"] == "rate_limited"][0]["limit"] == group


def test_blocked_contact_messages_are_not_saved(client):
    with time_machine.travel(fresh_window_start("5/h"), tick=False):
        for n in range(6):
            client.post("/contact/", contact_payload(n))
    assert ContactMessage.objects.count() == 5


def test_blocked_consultations_are_not_saved(client):
    with time_machine.travel(fresh_window_start("5/h"), tick=False):
        for n in range(6):
            client.post("/consultation/", consultation_payload(n))
    assert ConsultationRequest.objects.count() == 5


def test_reading_a_rate_limited_page_is_never_blocked(client):
    with time_machine.travel(fresh_window_start("5/m"), tick=False):
        for _ in range(10):
            assert client.get("/accounts/login/").status_code == 200


def test_clients_behind_the_proxy_are_counted_separately(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    with time_machine.travel(fresh_window_start("3/m"), tick=False):
        for n in range(3):
            client.post("/admin/login/", login_payload(n), HTTP_X_FORWARDED_FOR="203.0.113.1")
        assert client.post("/admin/login/", login_payload(9), HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 429
        # Another client through the same nginx (same REMOTE_ADDR) is not blocked.
        assert client.post("/admin/login/", login_payload(9), HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 200


def test_the_cms_staff_login_shares_the_staff_limit(client):
    with time_machine.travel(fresh_window_start("3/m"), tick=False):
        for n in range(3):
            assert client.post("/cms-admin/login/", login_payload(n)).status_code == 200
        assert client.post("/cms-admin/login/", login_payload(3)).status_code == 429
