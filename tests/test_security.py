"""The security baseline: headers, CSP nonces, CSRF, idle timeout, lockout, body cap, client IP."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent
from consultations.models import ContactMessage

# /contact/ is the CMS contact page.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("site_pages")]

CONTACT = {"name": "Ada", "email": "ada@example.com", "subject": "Hello", "message": "Is Magento supported?"}


def test_public_page_carries_every_security_header(client):
    response = client.get("/contact/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_public_page_csp_uses_a_nonce_and_no_unsafe_inline_scripts(client):
    response = client.get("/contact/")
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    nonce = re.search(r"'nonce-([^']+)'", policy["script-src"]).group(1)
    assert "'unsafe-inline'" not in policy["script-src"]
    assert f'nonce="{nonce}"' in response.content.decode()
    assert policy["frame-ancestors"] == "'none'"
    # Stripe's JS is not allowed on pages that do not need it.
    assert "stripe" not in response["Content-Security-Policy"]
    # A fresh nonce on every response.
    assert nonce not in client.get("/contact/")["Content-Security-Policy"]


def test_admin_prefixes_get_the_looser_policy_without_a_nonce(client):
    for path in ("/admin/login/", "/cms-admin/login/"):
        policy = client.get(path)["Content-Security-Policy"]
        assert "script-src 'self' 'unsafe-inline'" in policy
        assert "nonce-" not in policy


def test_post_without_csrf_token_is_refused_and_nothing_is_saved():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/contact/", CONTACT)
    assert response.status_code == 403
    assert b"Your form expired" in response.content
    assert ContactMessage.objects.count() == 0


def test_post_with_csrf_token_is_accepted():
    client = Client(enforce_csrf_checks=True)
    client.get("/contact/")
    response = client.post("/contact/", {**CONTACT, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert response.status_code == 302
    assert ContactMessage.objects.count() == 1


def test_session_cookie_is_httponly_and_samesite_lax(client, user_factory):
    user_factory(email="cookie@example.com")
    response = client.post("/accounts/login/", {"username": "cookie@example.com", "password": "correct horse battery"})
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


class TestIdleTimeout:
    def test_customer_is_logged_out_after_30_idle_minutes(self, client, user_factory, security_log):
        user = user_factory()
        start = timezone.now()
        with time_machine.travel(start, tick=False) as clock:
            client.force_login(user)
            assert client.get("/accounts/").status_code == 200
            clock.shift(timedelta(minutes=29))
            assert client.get("/accounts/").status_code == 200  # activity resets the clock
            clock.shift(timedelta(minutes=31))
            response = client.get("/accounts/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=/accounts/")
        login_page = client.get(response["Location"])
        assert "signed out after 30 minutes without activity" in login_page.content.decode()
        assert client.get("/accounts/").status_code == 302  # really logged out
        event = AuditEvent.objects.get(event="idle_timeout")
        assert event.actor == user and event.detail["idle_seconds"] >= 31 * 60
        events = [line["event"] for line in security_log()]
        assert events[-2:] == ["idle_timeout", "logout"]

    def test_staff_is_sent_to_the_staff_login(self, client, staff_user):
        with time_machine.travel(timezone.now(), tick=False) as clock:
            client.force_login(staff_user)
            assert client.get("/admin/").status_code == 200
            clock.shift(timedelta(minutes=31))
            response = client.get("/admin/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
        assert AuditEvent.objects.filter(event="idle_timeout", actor=staff_user).exists()


class TestLockout:
    def test_axes_locks_out_after_the_configured_failures(self, client, user_factory, settings, security_log):
        user_factory(email="victim@example.com")
        bad = {"username": "victim@example.com", "password": "wrong password"}
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            assert client.post("/accounts/login/", bad).status_code == 200
        locked = client.post("/accounts/login/", bad)
        assert locked.status_code == 429
        assert b"Sign-in temporarily locked" in locked.content
        # Even the right password is refused while locked (rate-limit counters cleared to isolate axes).
        from django.core.cache import cache

        cache.delete_pattern("*")
        response = client.post(
            "/accounts/login/", {"username": "victim@example.com", "password": "correct horse battery"}
        )
        assert response.status_code == 429
        assert "_auth_user_id" not in client.session
        assert AuditEvent.objects.filter(event="lockout").exists()
        assert "lockout" in [line["event"] for line in security_log()]

    def test_failed_and_successful_logins_are_audited_without_passwords(self, client, user_factory, security_log):
        user_factory(email="audit@example.com")
        client.post("/accounts/login/", {"username": "audit@example.com", "password": "wrong password"})
        client.post("/accounts/login/", {"username": "audit@example.com", "password": "correct horse battery"})
        events = [line["event"] for line in security_log()]
        assert events == ["login_failed", "login_success"]
        assert "password" not in str(security_log())
        assert AuditEvent.objects.filter(event="login_failed", actor_email="audit@example.com").exists()


class TestRequestBodyLimit:
    def test_a_body_over_50_mb_is_refused_and_nothing_is_saved(self, client):
        body = b"x" * (50 * 1024 * 1024 + 1)
        response = client.generic("POST", "/contact/", body, content_type="application/octet-stream")
        assert response.status_code == 413
        assert b"limited to 50 MB" in response.content
        assert ContactMessage.objects.count() == 0

    def test_a_body_at_the_limit_gets_through_to_the_view(self, client):
        response = client.post("/contact/", {**CONTACT, "message": "short"})
        assert response.status_code == 302

    def test_a_malformed_content_length_is_a_clear_400(self, client):
        response = client.generic("POST", "/contact/", b"", CONTENT_LENGTH="lots")
        assert response.status_code == 400
        assert b"Content-Length header is not a number" in response.content


class TestClientIp:
    def test_without_proxies_remote_addr_is_the_client(self, rf, settings):
        from shophosting.core.client_ip import client_ip

        settings.TRUSTED_PROXY_COUNT = 0
        request = rf.get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.1")
        assert client_ip(request) == "203.0.113.9"

    def test_behind_one_proxy_the_forged_left_entries_are_ignored(self, rf, settings):
        from shophosting.core.client_ip import client_ip

        settings.TRUSTED_PROXY_COUNT = 1
        request = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
        assert client_ip(request) == "203.0.113.9"

    def test_behind_two_proxies(self, rf, settings):
        from shophosting.core.client_ip import client_ip

        settings.TRUSTED_PROXY_COUNT = 2
        request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9, 10.0.0.1")
        assert client_ip(request) == "203.0.113.9"
