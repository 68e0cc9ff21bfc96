import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, User
from accounts.roles import ROLE_PERMISSIONS, Role
from accounts.services import staff_user_ensure

pytestmark = pytest.mark.django_db


def test_email_is_the_login_and_is_case_insensitive(client, user_factory):
    user_factory(email="Merchant@Example.com")
    assert User.objects.get().email == "merchant@example.com"
    response = client.post(
        "/accounts/login/", {"username": "MERCHANT@example.com", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/"
    assert "merchant@example.com" in client.get("/accounts/").content.decode()


def test_wrong_password_shows_a_clear_error(client, user_factory):
    user_factory(email="m@example.com")
    response = client.post("/accounts/login/", {"username": "m@example.com", "password": "nope nope"})
    assert response.status_code == 200
    assert "Please enter a correct e-mail address and password" in response.content.decode()


def test_account_pages_need_a_login(client):
    response = client.get("/accounts/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_staff_roles_exist_as_groups_with_permissions():
    assert set(Group.objects.values_list("name", flat=True)) >= {"super_admin", "admin", "support"}
    super_admin = Group.objects.get(name="super_admin")
    assert super_admin.permissions.count() == Permission.objects.count()
    support = set(Group.objects.get(name="support").permissions.values_list("codename", flat=True))
    assert support == {name.split(".")[1] for name in ROLE_PERMISSIONS[Role.SUPPORT]}
    assert "change_user" not in support


def test_audit_trail_is_read_only_in_the_admin(client, staff_user):
    AuditEvent.objects.create(event="login_failed", actor_email="x@example.com")
    client.force_login(staff_user)
    assert client.get("/admin/accounts/auditevent/").status_code == 200
    assert client.get("/admin/accounts/auditevent/add/").status_code == 403
    event = AuditEvent.objects.get(event="login_failed")
    response = client.post(f"/admin/accounts/auditevent/{event.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_demo_seed_loads_plans_pages_and_a_staff_user_idempotently(client, capsys):
    call_command("demo_seed", staff_email="demo@example.com")
    first = capsys.readouterr().out
    call_command("demo_seed", staff_email="demo@example.com")
    second = capsys.readouterr().out
    password = second.split("password: ")[1].strip()
    from billing.models import Plan

    assert Plan.objects.count() == 12
    staff = User.objects.get(email="demo@example.com")
    assert staff.is_staff and staff.is_superuser and staff.groups.filter(name="super_admin").exists()
    assert staff.check_password(password)
    assert "plans: 12" in first
    home = client.get("/")
    assert home.status_code == 200
    assert "Commerce Core" in home.content.decode() and "Agency Plus" in home.content.decode()


def test_demo_seed_dry_run_writes_nothing(capsys):
    call_command("demo_seed", dry_run=True)
    assert "would load" in capsys.readouterr().out
    assert not User.objects.exists()


# --- Two-factor: an unverified session, disabling and replacing, the failure budget (issue #14, item 1) ------


def _enrol(client, user) -> tuple[TOTPDevice, list[str]]:
    """Turn two-factor on through the pages (this session is then verified); returns the device and codes."""
    url = reverse("accounts:two_factor")
    client.force_login(user)
    client.post(url, {"action": "start"})
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    done = client.post(url, {"action": "confirm", "token": _code(device)})
    return device, re.findall(r"<li><code>([^<]+)</code></li>", done.content.decode())


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key):06d}"


def _password_only(client, user, password="correct horse battery"):
    client.post(reverse("accounts:logout"))
    client.post(reverse("accounts:login"), {"username": user.email, "password": password})
    assert client.session.get("_auth_user_id") == str(user.pk)


def test_a_session_that_gave_only_the_password_reaches_only_the_code_page_and_sign_out(client, user_factory):
    user = user_factory(email="guarded@example.com")
    device, _ = _enrol(client, user)
    _password_only(client, user)
    url = reverse("accounts:two_factor")

    for page in (url, reverse("accounts:home"), reverse("accounts:password_change"), reverse("accounts:email_change")):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:second_factor"))
    disable = client.post(url, {"action": "disable", "password": "correct horse battery"})
    assert disable["Location"].startswith(reverse("accounts:second_factor"))
    client.post(url, {"action": "start"})
    assert TOTPDevice.objects.filter(user=user).count() == 1 and StaticDevice.objects.filter(user=user).exists()

    # Even a new app left waiting from an earlier session (its code known to whoever holds the phone) does not
    # replace the confirmed one from here, nor verify this session.
    waiting = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    client.post(url, {"action": "confirm", "token": _code(waiting)})
    waiting.refresh_from_db()
    assert not waiting.confirmed and TOTPDevice.objects.get(confirmed=True) == device
    assert client.get(reverse("accounts:home")).status_code == 302

    assert client.get(reverse("accounts:second_factor")).status_code == 200
    client.post(reverse("accounts:logout"))
    assert "_auth_user_id" not in client.session


def test_turning_two_factor_off_needs_a_verified_session_and_a_current_code(client, user_factory):
    user = user_factory(email="leaving@example.com")
    device, codes = _enrol(client, user)
    url = reverse("accounts:two_factor")

    no_code = client.post(url, {"action": "disable", "password": "correct horse battery"}, follow=True)
    assert "That code is not right" in no_code.content.decode()
    wrong = client.post(url, {"action": "disable", "password": "correct horse battery", "token": "000000"})
    assert wrong.status_code == 200 and TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    bad_password = client.post(url, {"action": "disable", "password": "nope nope nope", "token": codes[0]})
    assert "not your password" in bad_password.content.decode()
    failed = AuditEvent.objects.filter(event="two_factor_failed", actor=user)
    assert [event.detail.get("step") for event in failed.order_by("pk")] == ["disable", "disable", "disable_password"]

    with time_machine.travel(timezone.now() + timedelta(seconds=10)):  # past django-otp's own short throttle
        off = client.post(url, {"action": "disable", "password": "correct horse battery", "token": codes[0]})
    assert off.status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists() and not StaticDevice.objects.filter(user=user).exists()
    assert AuditEvent.objects.filter(event="two_factor_disabled", actor=user).exists()


def test_wrong_passwords_when_turning_two_factor_off_spend_the_failure_budget(client, user_factory):
    """A verified session must not be a password oracle: wrong passwords count like wrong codes."""
    user = user_factory(email="oracle@example.com")
    device, codes = _enrol(client, user)
    url = reverse("accounts:two_factor")

    for guess in range(5):
        client.post(url, {"action": "disable", "password": f"guess {guess}", "token": codes[0]})
    right = client.post(url, {"action": "disable", "password": "correct horse battery", "token": codes[0]})

    assert "Too many wrong codes" in right.content.decode()
    assert TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    assert AuditEvent.objects.filter(event="two_factor_failed", actor=user, detail__throttled=True).exists()


def test_moving_to_a_new_app_needs_a_current_code_and_retires_the_old_app_and_codes(client, user_factory):
    user = user_factory(email="newphone@example.com")
    old, old_codes = _enrol(client, user)
    url = reverse("accounts:two_factor")

    client.post(url, {"action": "start"})  # no current code
    assert not TOTPDevice.objects.filter(user=user, confirmed=False).exists()
    with time_machine.travel(timezone.now() + timedelta(seconds=40)):  # the next code of the 30 s window
        client.post(url, {"action": "start", "token": _code(old)})
        new = TOTPDevice.objects.get(user=user, confirmed=False)
        page = client.get(url).content.decode()
        assert "keeps working until the new one" in page
        done = client.post(url, {"action": "confirm", "token": _code(new)})
    new_codes = re.findall(r"<li><code>([^<]+)</code></li>", done.content.decode())
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert list(TOTPDevice.objects.filter(user=user)) == [new] and TOTPDevice.objects.get(pk=new.pk).confirmed
    assert AuditEvent.objects.filter(event="two_factor_replaced", actor=user).exists()

    _password_only(client, user)
    assert (
        "That code is not right"
        in client.post(reverse("accounts:second_factor"), {"token": old_codes[0]}, follow=True).content.decode()
    )


def test_the_recovery_codes_page_is_never_cached(client, user_factory):
    user = user_factory(email="cache@example.com")
    client.force_login(user)
    url = reverse("accounts:two_factor")
    client.post(url, {"action": "start"})
    device = TOTPDevice.objects.get(user=user)

    done = client.post(url, {"action": "confirm", "token": _code(device)})

    assert "<li><code>" in done.content.decode()
    assert "no-store" in done["Cache-Control"] and "private" in done["Cache-Control"]
    assert "no-store" in client.get(reverse("accounts:second_factor"))["Cache-Control"]


def test_staff_enrolling_with_the_password_alone_get_five_wrong_codes_whatever_they_restart(
    client, staff_user, settings
):
    settings.STAFF_TWO_FACTOR_REQUIRED = True
    client.post(reverse("staff_login"), {"username": staff_user.email, "password": "staff password 123"})
    url = reverse("accounts:two_factor")

    # Each `start` is a new device with django-otp's own throttle fresh; the account's budget is not.
    for _ in range(5):
        client.post(url, {"action": "start"})
        wrong = client.post(url, {"action": "confirm", "token": "000000"})
        assert "did not match" in wrong.content.decode()
    client.post(url, {"action": "start"})
    device = TOTPDevice.objects.get(user=staff_user, confirmed=False)
    refused = client.post(url, {"action": "confirm", "token": _code(device)})

    assert "Too many wrong codes" in refused.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert client.get("/admin/")["Location"].startswith(url)  # not verified
    failures = AuditEvent.objects.filter(event="two_factor_failed", actor=staff_user).order_by("pk")
    assert len(failures) == 6 and all(event.detail["step"] == "confirm" for event in failures)
    assert failures.last().detail.get("throttled") is True

    # The staff member with the real phone still enrols once the window has passed.
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        done = client.post(url, {"action": "confirm", "token": _code(device)})
        assert "Two-factor sign-in is on" in done.content.decode()
        assert client.get("/admin/").status_code == 200


def test_the_code_page_shares_the_account_budget_across_sessions(client, user_factory):
    from django.test import Client

    user = user_factory(email="budget@example.com")
    device, _ = _enrol(client, user)
    for n in range(5):
        other = Client(REMOTE_ADDR=f"127.0.1.{n}")  # a new session and address each time
        _password_only(other, user)
        other.post(reverse("accounts:second_factor"), {"token": "000000"})
    last = Client(REMOTE_ADDR="127.0.2.1")
    _password_only(last, user)
    with time_machine.travel(timezone.now() + timedelta(seconds=40)):
        refused = last.post(reverse("accounts:second_factor"), {"token": _code(device)}, follow=True)
    assert "Too many wrong codes" in refused.content.decode()
    assert last.get(reverse("accounts:home")).status_code == 302


def test_the_code_budget_slides_so_no_clock_boundary_gives_a_fresh_five(client, user_factory):
    """Five wrong codes keep the sixth out for 15 minutes after the first of them, wherever the clock is.
    The failures are placed just before the boundary where a fixed window (django-ratelimit's, staggered per
    key) would start counting again, so a fixed-window budget lets the right code through at once."""
    from django_ratelimit.core import _get_window

    user = user_factory(email="sliding@example.com")
    device, _ = _enrol(client, user)
    _password_only(client, user)
    boundary = _get_window(f"user:{user.pk}", 15 * 60)  # the end of the key's current 15-minute window
    start = datetime.fromtimestamp(boundary, tz=UTC) - timedelta(seconds=270)
    if start < timezone.now():
        start += timedelta(minutes=15)  # only forwards: the enrolment's code must stay in the past
    for n in range(5):  # a minute apart, under the sign-in pages' own limit per address (5 a minute)
        with time_machine.travel(start + timedelta(seconds=61 * n), tick=False):
            client.post(reverse("accounts:second_factor"), {"token": "000000"})

    for later in (timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=14, seconds=50)):
        with time_machine.travel(start + later):
            refused = client.post(reverse("accounts:second_factor"), {"token": _code(device)}, follow=True)
            assert "Too many wrong codes" in refused.content.decode(), later
    with time_machine.travel(start + timedelta(minutes=15, seconds=10)):  # the first failure has left the window
        passed = client.post(reverse("accounts:second_factor"), {"token": _code(device)})
    assert passed.status_code == 302
    assert client.get(reverse("accounts:home")).status_code == 200


def test_the_wait_named_is_that_of_the_longest_budget_used_up(user_factory):
    """The 20th wrong code of a day, the 5th of a quarter hour, uses up both budgets: the wait named is the
    day's, not the 15 minutes after which the code would be refused again."""
    from shophosting.core.ratelimits import failure_count, failures_exhausted

    key = f"user:{user_factory(email='daylong@example.com').pk}"
    start = timezone.now()
    moments = [start + timedelta(minutes=16 * n) for n in range(15)]  # never 5 in a quarter hour
    moments += [moments[-1] + timedelta(minutes=16, seconds=n) for n in range(5)]  # then 5 at once
    for moment in moments:
        with time_machine.travel(moment, tick=False):
            failure_count(group="two_factor_code", key=key)
    with time_machine.travel(moments[-1] + timedelta(seconds=1), tick=False):
        wait = failures_exhausted(group="two_factor_code", key=key)
    assert wait == 24 * 60 * 60 - (16 * 15 * 60 + 5)  # when the first of the 20 leaves the day


# --- Staff gates on every page with customer data; ticket attachments (issue #14, item 3) --------------------


def _attachment_url(user_factory) -> str:
    from consultations.models import TicketAttachment
    from consultations.services import ticket_create

    customer = user_factory(email="ticket-owner@example.com")
    pdf = SimpleUploadedFile("contract.pdf", b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    ticket_create(customer=customer, category="billing", subject="Invoice", body="See file.", attachments=[pdf])
    return reverse("consultations:attachment", args=[TicketAttachment.objects.get().pk])


def test_staff_without_a_second_factor_see_no_customer_file_outside_the_admin(client, user_factory, settings):
    settings.STAFF_TWO_FACTOR_REQUIRED = True
    url = _attachment_url(user_factory)
    support, _ = staff_user_ensure(email="desk@example.com", role=Role.SUPPORT, password="support pass 123")
    client.post(reverse("staff_login"), {"username": support.email, "password": "support pass 123"})

    for page in (url, reverse("accounts:home"), "/"):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:two_factor")), page
    # What enrolment needs stays open: the set-up page itself, the password change, sign-out.
    assert client.get(reverse("accounts:two_factor")).status_code == 200
    assert client.get(reverse("admin:password_change")).status_code == 200

    client.post(reverse("accounts:two_factor"), {"action": "start"})
    device = TOTPDevice.objects.get(user=support)
    client.post(reverse("accounts:two_factor"), {"action": "confirm", "token": _code(device)})
    assert client.get(url).status_code == 200


def test_staff_on_a_temporary_password_see_no_customer_file_until_they_change_it(client, user_factory):
    url = _attachment_url(user_factory)
    support, _ = staff_user_ensure(email="fresh@example.com", role=Role.SUPPORT, password="temporary pass 1")
    User.objects.filter(pk=support.pk).update(must_change_password=True)
    client.force_login(support)

    for page in (url, reverse("accounts:home"), "/"):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"] == reverse("admin:password_change"), page

    change = {
        "old_password": "temporary pass 1",
        "new_password1": "my own pass 4242",
        "new_password2": "my own pass 4242",
    }
    client.post(reverse("admin:password_change"), change)
    assert client.get(url).status_code == 200


def test_ticket_files_need_the_ticket_view_permission_not_just_a_staff_account(client, user_factory):
    url = _attachment_url(user_factory)
    editor, _ = staff_user_ensure(email="editor@example.com", role=Role.EDITOR, password="editor pass 123")
    support, _ = staff_user_ensure(email="helper@example.com", role=Role.SUPPORT, password="support pass 123")

    client.force_login(editor)
    assert client.get(url).status_code == 404
    client.force_login(support)
    assert client.get(url).status_code == 200


def test_a_staff_member_with_a_device_opens_a_customer_file_only_after_the_code(client, user_factory, settings):
    url = _attachment_url(user_factory)
    support, _ = staff_user_ensure(email="coded@example.com", role=Role.SUPPORT, password="support pass 123")
    device, _ = _enrol(client, support)
    client.post(reverse("admin:logout"))
    client.post(reverse("staff_login"), {"username": support.email, "password": "support pass 123"})

    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:second_factor"))
    with time_machine.travel(timezone.now() + timedelta(seconds=40)):
        client.post(reverse("accounts:second_factor"), {"token": _code(device)})
        assert client.get(url).status_code == 200


# --- Sign-in: the lockout ignores case; staff are sent to the staff login (issue #14, item 9) ----------------


def test_the_lockout_counts_every_spelling_of_an_address_as_one_account(client, user_factory, settings):
    """The lockout, its audit and the sign-in all key on the address as accounts store it (lower-cased), not
    on what was typed; so the lockout holds whatever the database's collation compares."""
    from django.core.cache import cache

    user_factory(email="v@example.com")
    spellings = ["V@Example.Com", "v@example.com", "V@example.com", "v@EXAMPLE.com"]
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        wrong = {"username": spellings[n % len(spellings)], "password": "wrong password"}
        assert client.post(reverse("accounts:login"), wrong).status_code == 200
    assert list(AccessAttempt.objects.values_list("username", "failures_since_start")) == [
        ("v@example.com", settings.AXES_FAILURE_LIMIT - 1)
    ]
    failed = AuditEvent.objects.filter(event="login_failed")
    assert {event.detail["username"] for event in failed} == {"v@example.com"}
    locked = client.post(reverse("accounts:login"), {"username": "V@EXAMPLE.COM", "password": "wrong password"})
    assert locked.status_code == 429
    assert AuditEvent.objects.get(event="lockout").detail["username"] == "v@example.com"

    cache.delete_pattern("*")  # the per-IP rate limit, so only the lockout answers
    right = client.post(reverse("accounts:login"), {"username": "V@example.com", "password": "correct horse battery"})
    assert right.status_code == 429 and "_auth_user_id" not in client.session


def test_staff_are_refused_at_the_customer_login_and_pointed_to_the_staff_login(client, staff_user):
    login = reverse("accounts:login")

    wrong = client.post(login, {"username": staff_user.email, "password": "not the password"}).content.decode()
    assert "Please enter a correct e-mail address and password" in wrong and reverse("staff_login") not in wrong
    refused = client.post(login, {"username": "Staff@Example.com", "password": "staff password 123"})

    page = refused.content.decode()
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    assert f'<a href="{reverse("staff_login")}">staff login</a>' in page
    assert "This sign-in is for customers" in page
    [attempt] = AccessAttempt.objects.all()
    assert attempt.username == "staff@example.com" and attempt.failures_since_start == 2
    reasons = [e.detail.get("reason") for e in AuditEvent.objects.filter(event="login_failed").order_by("pk")]
    assert reasons == [None, "staff_at_customer_login"]
    assert not AuditEvent.objects.filter(event="login_success").exists()

    staff = client.post(reverse("staff_login"), {"username": staff_user.email, "password": "staff password 123"})
    assert staff.status_code == 302 and client.session["_auth_user_id"] == str(staff_user.pk)
