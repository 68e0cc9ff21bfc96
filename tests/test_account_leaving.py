"""Leaving (issue #19 item 4) without the engine: the account data export, the refusals of account closing
(wrong password, twice, staff without the permission), the staff action, and the purge's redaction of the
audit trail. Stripe is faked at its HTTP boundary; the close with real stores, final backups and teardown
is tests/test_account_closure_flow.py (Docker and restic)."""

import datetime as dt
import io
import json
import zipfile
from datetime import timedelta

import pytest
import time_machine
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.closure import AccountClosureRefused, closed_account_placeholder
from accounts.models import AccountClosure, AuditEvent, User
from accounts.roles import Role
from accounts.services import audit_record, customer_active_set, staff_user_ensure
from billing.models import Subscription
from billing.services.closure import account_close, account_closures_advance
from consultations.models import ConsultationRequest, Ticket
from consultations.services import consultation_request_create, ticket_create, ticket_reply_staff
from tests.billing_helpers import SIGNUP, paid_signup, signup

pytestmark = pytest.mark.django_db
CS = AccountClosure.Status


def _with_invoice_ticket_and_consultation(stripe_api, stripe_webhook, stripe_subscription, customer, staff, tag):
    invoice = stripe_api.invoice(subscription=stripe_subscription, status="paid")
    assert stripe_webhook.post(stripe_api.event("invoice.paid", invoice)).status_code == 200
    ticket = ticket_create(
        customer=customer, category="technical", subject=f"Checkout is slow {tag}", body=f"Since Monday {tag}"
    )
    ticket_reply_staff(ticket_id=ticket.pk, author=staff, body=f"We are looking into it {tag}")
    ticket_reply_staff(ticket_id=ticket.pk, author=staff, body=f"internal: customer seems upset {tag}", internal=True)
    consultation_request_create(
        name=f"Ada {tag}",
        email=customer.email,
        phone="+44 20 7946 0000",
        preferred_time=dt.datetime(2026, 12, 10, 15, tzinfo=dt.UTC),
        timezone="Europe/London",
        message=f"Moving from another host {tag}",
    )
    return invoice


def _archive(response) -> dict[str, str]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="shophosting-account-')
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def signup_store_domain() -> str:
    """The signup's store as pages name it: its platform name, while the typed domain waits for its proof."""
    from stores.models import Store

    return Store.objects.filter(customer__email=SIGNUP["email"]).values_list("domain", flat=True).get()


def test_the_export_holds_the_customers_own_data_as_json_and_csv_and_never_anothers(
    client, priced_plan, stripe_api, stripe_webhook
):
    staff, _ = staff_user_ensure(email="desk@example.com", role=Role.SUPPORT)
    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    customer = subscription.customer
    mine = _with_invoice_ticket_and_consultation(
        stripe_api, stripe_webhook, stripe_subscription, customer, staff, "MINE"
    )
    other_client = Client()
    other_subscription, other_stripe = paid_signup(
        other_client, priced_plan, stripe_api, stripe_webhook, email="other@example.com", domain="other.test"
    )
    theirs = _with_invoice_ticket_and_consultation(
        stripe_api, stripe_webhook, other_stripe, other_subscription.customer, staff, "THEIRS"
    )
    assert client.get(reverse("accounts:export")).status_code == 405  # a POST (CSRF-protected) only

    files = _archive(client.post(reverse("accounts:export")))

    assert set(files) == {
        "account.json",
        "profile.csv",
        "stores.csv",
        "store_names.csv",
        "subscriptions.csv",
        "invoices.csv",
        "tickets.csv",
        "ticket_messages.csv",
        "consultations.csv",
        "README.txt",
    }
    document = json.loads(files["account.json"])
    assert document["account"]["email"] == SIGNUP["email"] and document["account"]["company"] == SIGNUP["company"]
    [store] = document["stores"]
    # The signup's domain waits for its proof; the store answers on its platform name meanwhile.
    assert store["plan"] == priced_plan.name and store["status"] == "Queued"
    assert SIGNUP["domain"] in {n["name"] for n in document["store_names"]}
    assert [i["number"] for i in document["invoices"]] == [mine["number"]]
    assert document["invoices"][0]["amount"] == "$99.00"
    assert [t["subject"] for t in document["tickets"]] == ["Checkout is slow MINE"]
    assert [(m["from"], m["body"]) for m in document["ticket_messages"]] == [
        ("you", "Since Monday MINE"),
        ("ShopHosting support", "We are looking into it MINE"),
    ]
    assert [c["message"] for c in document["consultations"]] == ["Moving from another host MINE"]
    assert "Checkout is slow MINE" in files["tickets.csv"] and mine["number"] in files["invoices.csv"]
    assert signup_store_domain() in files["stores.csv"]
    everything = "\n".join(files.values())
    for foreign in ("other@example.com", "other.test", theirs["number"], "THEIRS"):
        assert foreign not in everything, foreign
    # Staff notes and staff members' names are the platform's, not the customer's.
    assert "internal:" not in everything and "desk@example.com" not in everything
    [audit] = AuditEvent.objects.filter(event="account_exported")
    assert audit.actor == customer and audit.detail["bytes"] > 0


def test_a_csv_cell_that_a_spreadsheet_would_run_as_a_formula_is_quoted(
    client, priced_plan, stripe_api, stripe_webhook
):
    subscription, _ = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    ticket_create(customer=subscription.customer, category="technical", subject="=HYPERLINK(1)", body="@SUM(A1)")

    files = _archive(client.post(reverse("accounts:export")))

    assert "'=HYPERLINK(1)" in files["tickets.csv"] and "'@SUM(A1)" in files["ticket_messages.csv"]
    assert json.loads(files["account.json"])["tickets"][0]["subject"] == "=HYPERLINK(1)"


def test_the_leave_page_states_what_happens_and_the_retention(client, priced_plan, stripe_api, stripe_webhook):
    paid_signup(client, priced_plan, stripe_api, stripe_webhook)

    page = client.get(reverse("accounts:leave")).content.decode()

    assert "Your subscriptions are canceled at once" in page and "You can no longer sign in" in page
    assert "The final backups are kept for 30 days" in page and signup_store_domain() in page
    # The logs are not rewritten: the page says how long they keep the address, the figure logrotate uses.
    assert "Our server logs are not rewritten" in page and "at most 30 days after it was written" in page
    assert reverse("accounts:leave") in client.get(reverse("accounts:home")).content.decode()


def _nothing_changed(customer: User, subscription: Subscription, stripe_api) -> None:
    customer.refresh_from_db()
    subscription.refresh_from_db()
    assert customer.is_active and not AccountClosure.objects.filter(user=customer).exists()
    assert subscription.status == Subscription.Status.ACTIVE
    assert stripe_api.requests_to("DELETE", "subscriptions/") == []


def test_a_wrong_password_closes_nothing(client, priced_plan, stripe_api, stripe_webhook):
    subscription, _ = paid_signup(client, priced_plan, stripe_api, stripe_webhook)

    response = client.post(reverse("accounts:leave"), {"password": "not my password", "understood": "on"})

    assert response.status_code == 200 and "That password is not right" in response.content.decode()
    _nothing_changed(subscription.customer, subscription, stripe_api)
    [refused] = AuditEvent.objects.filter(event="account_close_refused")
    assert refused.detail["reason"] == "password" and refused.actor == subscription.customer
    unticked = client.post(reverse("accounts:leave"), {"password": SIGNUP["password"]})
    assert unticked.status_code == 200 and "This field is required" in unticked.content.decode()
    _nothing_changed(subscription.customer, subscription, stripe_api)


def test_closing_signs_the_customer_out_cancels_in_stripe_and_a_second_close_is_refused(
    client, priced_plan, stripe_api, stripe_webhook, django_capture_on_commit_callbacks
):
    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    customer = subscription.customer
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:leave"), {"password": SIGNUP["password"], "understood": "on"})

    assert response.status_code == 200 and "Your account is being closed" in response.content.decode()
    assert stripe_api.requests_to("DELETE", f"subscriptions/{stripe_subscription['id']}") == [{}]
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED and subscription.teardown_at is not None
    closure = AccountClosure.objects.get(user=customer)
    assert closure.status == CS.CLOSING and closure.via == AccountClosure.Via.CUSTOMER
    assert closure.retention_days == 30
    [email] = mail.outbox
    assert email.to == [SIGNUP["email"]] and "kept for 30 days" in email.body
    # Signed out, and no way back in.
    assert client.get(reverse("accounts:home")).status_code == 302
    login = client.post(reverse("accounts:login"), {"username": SIGNUP["email"], "password": SIGNUP["password"]})
    assert login.status_code == 200 and "_auth_user_id" not in client.session
    staff, _ = staff_user_ensure(email="ops@example.com", role=Role.ADMIN)
    with pytest.raises(PermissionError):
        customer_active_set(user=customer, active=True, actor=staff)

    with pytest.raises(AccountClosureRefused, match="already closing"):
        account_close(customer_id=customer.pk, actor=staff, reason="their e-mail of today")

    assert AccountClosure.objects.filter(user=customer).count() == 1
    assert len(stripe_api.requests_to("DELETE", "subscriptions/")) == 1
    assert list(closure.events.values_list("new_status", flat=True)) == [CS.CLOSING]


def test_staff_without_the_permission_cannot_close_an_account(client, priced_plan, stripe_api, stripe_webhook):
    subscription, _ = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    support, _ = staff_user_ensure(email="desk@example.com", role=Role.SUPPORT)

    with pytest.raises(PermissionDenied, match="close customer account"):
        account_close(customer_id=subscription.customer_id, actor=support, reason="asked by mail")

    _nothing_changed(subscription.customer, subscription, stripe_api)
    [refused] = AuditEvent.objects.filter(event="account_close_refused")
    assert refused.actor == support and refused.detail["reason"] == "permission"
    # The admin does not offer it to them either; posting it is refused as an unknown action.
    support_client = Client()
    support_client.force_login(support)
    changelist = reverse("admin:accounts_customer_changelist")
    support_client.post(
        changelist, {"action": "close_account", ACTION_CHECKBOX_NAME: [subscription.customer_id], "apply": "1"}
    )
    _nothing_changed(subscription.customer, subscription, stripe_api)


def test_staff_close_an_account_the_customer_asked_to_close_from_the_admin(
    client, priced_plan, stripe_api, stripe_webhook
):
    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    admin_user, _ = staff_user_ensure(email="ops@example.com", role=Role.ADMIN)
    staff_client = Client()
    staff_client.force_login(admin_user)
    changelist = reverse("admin:accounts_customer_changelist")
    selected = {"action": "close_account", ACTION_CHECKBOX_NAME: [subscription.customer_id]}

    assert client.get(reverse("accounts:home")).status_code == 200  # the customer is signed in
    confirm = staff_client.post(changelist, selected)
    assert confirm.status_code == 200
    assert signup_store_domain() in confirm.content.decode() and "30 days" in confirm.content.decode()
    no_reason = staff_client.post(changelist, {**selected, "apply": "1", "reason": " "})
    assert no_reason.status_code == 200 and "This field is required" in no_reason.content.decode()
    _nothing_changed(subscription.customer, subscription, stripe_api)

    done = staff_client.post(changelist, {**selected, "apply": "1", "reason": "e-mail of 5 December"}, follow=True)

    assert "Closing the account of merchant@example.com: sign-in is refused" in done.content.decode()
    closure = AccountClosure.objects.get(user=subscription.customer)
    assert closure.via == AccountClosure.Via.STAFF and closure.requested_by == admin_user
    change_page = staff_client.get(reverse("admin:accounts_customer_change", args=[subscription.customer_id]))
    assert "Closing: stores being backed up and torn down" in change_page.content.decode()
    # The customer's own open session ends at its next request.
    assert client.get(reverse("accounts:home")).status_code == 302
    assert stripe_api.requests_to("DELETE", f"subscriptions/{stripe_subscription['id']}") == [{}]
    closing = AuditEvent.objects.get(event="account_closing")
    assert closing.actor == admin_user and closing.detail["reason"] == "e-mail of 5 December"
    assert AuditEvent.objects.filter(event="admin_action", detail__action="close_account").exists()


def test_a_stripe_outage_closes_nothing(client, priced_plan, stripe_api, stripe_webhook):
    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    stripe_api.fail_next("DELETE", f"subscriptions/{stripe_subscription['id']}", times=5)

    response = client.post(reverse("accounts:leave"), {"password": SIGNUP["password"], "understood": "on"})

    assert response.status_code == 200 and "could not be canceled at our payment provider" in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    assert not AccountClosure.objects.exists() and User.objects.get(pk=subscription.customer_id).is_active


PERSONAL = {
    "email": "ada@example.org",
    "first_name": "Augusta",
    "last_name": "Lovelace-Byron",
    "company": "Analytical Engines Ltd",
}


def test_after_the_retention_the_purge_removes_the_customer_and_redacts_every_audit_row_about_them(
    user_factory, rf, django_capture_on_commit_callbacks
):
    customer = User.objects.create_user(password="her own passphrase 1843", **PERSONAL)
    admin_user, _ = staff_user_ensure(email="ops@example.com", role=Role.ADMIN)
    # Her sign-in, a failed attempt naming her address, and staff acting on her account.
    for path, ip, event, kwargs in [
        ("/accounts/login/", "203.0.113.7", "login_success", {"actor": customer}),
        ("/accounts/login/", "198.51.100.9", "login_failed", {"username": PERSONAL["email"]}),
    ]:
        request = rf.post(path, REMOTE_ADDR=ip)
        audit_record(event=event, request=request, **kwargs)
    staff_request = rf.post("/admin/", REMOTE_ADDR="192.0.2.50")
    customer_active_set(user=customer, active=False, actor=admin_user, request=staff_request)
    customer_active_set(user=customer, active=True, actor=admin_user, request=staff_request)
    audit_record(event="note", actor=admin_user, about=f"{PERSONAL['first_name']} {PERSONAL['last_name']} called")
    ticket_create(customer=customer, category="billing", subject="Invoice address", body="Please change it")
    consultation_request_create(
        name="Augusta", email=PERSONAL["email"], preferred_time=timezone.now() + timedelta(days=2), timezone="UTC"
    )
    unrelated = audit_record(event="login_success", actor=admin_user, request=staff_request)
    before = set(AuditEvent.objects.values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        closure = account_close(customer_id=customer.pk, actor=admin_user, reason="her letter", request=staff_request)
    closure.refresh_from_db()
    # No stores: closed at once, purged after the retention.
    assert closure.status == CS.CLOSED and closure.purge_after - closure.closed_at == timedelta(days=30)
    with time_machine.travel(timezone.now() + timedelta(days=29)):
        assert account_closures_advance() == {"closed": [], "purged": []}
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        with django_capture_on_commit_callbacks(execute=True):
            assert account_closures_advance() == {"closed": [], "purged": [closure.pk]}

    closure.refresh_from_db()
    customer.refresh_from_db()
    placeholder = closed_account_placeholder(customer.pk)
    assert closure.status == CS.PURGED and closure.purged_at is not None
    assert customer.email == f"{placeholder}@closed.invalid" and not customer.has_usable_password()
    assert (customer.first_name, customer.last_name, customer.company, customer.is_active) == ("", "", "", False)
    assert not Ticket.objects.exists() and not ConsultationRequest.objects.exists()
    # Every audit row is kept...
    assert before <= set(AuditEvent.objects.values_list("pk", flat=True))
    # ...and none holds her address, name, company or IPs any more.
    trail = json.dumps(
        [[r.actor_email, r.ip_address, r.path, r.detail] for r in AuditEvent.objects.all()], default=str
    ).lower()
    for value in (*PERSONAL.values(), "Augusta Lovelace-Byron", "203.0.113.7", "198.51.100.9"):
        assert value.lower() not in trail, value
    sign_in = AuditEvent.objects.get(event="login_success", actor=customer)
    assert sign_in.actor_email == placeholder and sign_in.ip_address is None
    failed = AuditEvent.objects.get(event="login_failed")
    assert failed.detail["username"] == placeholder and failed.ip_address is None
    # Staff rows about her keep the staff member's own address and IP; her part is the placeholder.
    blocked = AuditEvent.objects.get(event="customer_deactivated")
    assert blocked.actor_email == "ops@example.com" and blocked.ip_address == "192.0.2.50"
    assert blocked.detail["user"] == placeholder
    assert AuditEvent.objects.get(event="note").detail["about"] == f"{placeholder} called"
    unrelated.refresh_from_db()
    assert unrelated.detail == {} and unrelated.ip_address == "192.0.2.50"
    purged = AuditEvent.objects.get(event="account_purged")
    assert purged.detail == {"customer": customer.pk, "user": placeholder}


def test_closing_an_account_that_never_paid_expires_its_checkout_and_removes_the_unbuilt_store(
    client, priced_plan, stripe_api, django_capture_on_commit_callbacks
):

    subscription = signup(client, priced_plan)
    store = subscription.stores.get()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:leave"), {"password": SIGNUP["password"], "understood": "on"})

    assert response.status_code == 200
    assert stripe_api.requests_to("POST", f"checkout/sessions/{subscription.checkout_session_id}/expire") == [{}]
    assert stripe_api.requests_to("DELETE", "subscriptions/") == []  # nothing was ever charged
    subscription.refresh_from_db()
    store.refresh_from_db()
    assert subscription.status == Subscription.Status.ABANDONED
    # Nothing was built, so there is nothing to back up: its teardown is queued at once.
    assert store.status == "deleting" and not store.backup_runs.exists()
    assert AccountClosure.objects.get(user=subscription.customer).status == CS.CLOSING
