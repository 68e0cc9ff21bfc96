"""Billing webhooks that must not be trusted blindly: plan changes against the store limit and the platform,
events delivered out of order, delayed payments (SEPA, ACH), a double click on "pay now", and payloads that
do not add up. Signed events go to dj-stripe's real endpoint; Stripe's API is faked at its HTTP boundary.

No Docker here: jobs are checked as queued, and where a store must be running, `worker_finished` records
what a provisioning worker records when a job's steps succeed (the steps themselves run on the real engine
in test_billing_lifecycle)."""

import copy
import json
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from djstripe.models import Subscription as MirroredSubscription

from accounts.models import AuditEvent
from billing.models import Plan, StoreHold, Subscription
from billing.services.checkout import checkouts_abandoned_cleanup
from billing.services.dunning import dunning_enforce
from billing.services.enforcement import stores_billing_enforce
from billing.services.plans import plan_price_create
from billing.services.subscriptions import subscription_store_add
from provisioning.models import ProvisioningJob
from stores.models import Store, StoreEvent
from tests.billing_helpers import complete_checkout, paid_signup, signup

pytestmark = pytest.mark.django_db
SS = Subscription.Status
Job = ProvisioningJob
SECRET = "whsec_test_shophosting_webhook_secret"  # the endpoint's, as in tests/plugins/stripe.py


@pytest.fixture(autouse=True)
def _no_jobs_left_queued():
    """E-mails are sent on commit, and so are RQ enqueues: no worker runs here, so none are left behind."""
    import django_rq

    yield
    django_rq.get_queue("provisioning").empty()


def worker_finished(*stores: Store) -> None:
    """A provisioning worker's bookkeeping for each queued job of these stores: claimed, then succeeded."""
    from provisioning.services import _job_claim, _job_succeed

    for store in stores:
        for job in store.jobs.filter(status__in=Job.ACTIVE).order_by("pk"):
            assert _job_claim(job.pk) is not None
            _job_succeed(job_id=job.pk)


def priced(slug: str) -> Plan:
    return plan_price_create(plan_id=Plan.objects.get(slug=slug).pk)


def price_switch(stripe_api, stripe_subscription: dict, plan: Plan) -> dict:
    """What the billing portal does: the subscription's item moves to `plan`'s price. Returns the
    previous_attributes Stripe sends with customer.subscription.updated."""
    previous = {"items": copy.deepcopy(stripe_subscription["items"])}
    stripe_subscription["items"]["data"][0]["price"] = copy.deepcopy(stripe_api.objects[plan.stripe_price_id])
    return previous


def statuses(*stores: Store) -> list[str]:
    return [Store.objects.get(pk=s.pk).status for s in stores]


# --- plan changes ---------------------------------------------------------------------------------------


def test_a_downgrade_suspends_the_newest_stores_beyond_the_limit_and_an_upgrade_brings_them_back(
    client, woo_plan, stripe_api, stripe_webhook, django_capture_on_commit_callbacks
):
    multi, core = priced("woocommerce-multi-store"), priced("woocommerce-commerce-core")
    subscription, stripe_subscription = paid_signup(client, multi, stripe_api, stripe_webhook, domain="a.test")
    customer = subscription.customer
    first = subscription.stores.get()
    second = subscription_store_add(subscription_id=subscription.pk, domain="b.test", actor=customer)
    third = subscription_store_add(subscription_id=subscription.pk, domain="c.test", actor=customer)
    worker_finished(first, second, third)
    assert statuses(first, second, third) == [Store.Status.ACTIVE] * 3
    mail.outbox.clear()

    previous = price_switch(stripe_api, stripe_subscription, core)
    with django_capture_on_commit_callbacks(execute=True):
        response = stripe_webhook.post(
            stripe_api.event("customer.subscription.updated", stripe_subscription, previous=previous)
        )

    assert response.status_code == 200, response.content
    subscription.refresh_from_db()
    assert subscription.plan == core
    # The oldest store keeps running with the new limits; the two newest are suspended, never deleted.
    assert [j.kind for j in first.jobs.filter(status=Job.Status.QUEUED)] == [Job.Kind.UPDATE_LIMITS]
    for store in (second, third):
        assert [j.kind for j in store.jobs.filter(status=Job.Status.QUEUED)] == [Job.Kind.SUSPEND]
    assert set(StoreHold.objects.values_list("store_id", flat=True)) == {second.pk, third.pk}
    held = AuditEvent.objects.filter(event="store_held_for_plan_limit")
    assert sorted(e.detail["store"] for e in held) == [second.pk, third.pk]
    [email] = mail.outbox
    assert email.to == ["merchant@example.com"] and "2 stores suspended" in email.subject
    # Stores are named by their primary name: the platform name while their own domain waits for proof.
    assert second.domain in email.body and third.domain in email.body and "Nothing is deleted" in email.body
    assert first.domain in email.body.split("We have suspended")[0]  # listed as kept
    worker_finished(first, second, third)
    assert statuses(first, second, third) == [Store.Status.ACTIVE, Store.Status.SUSPENDED, Store.Status.SUSPENDED]
    assert StoreEvent.objects.filter(store=third, new_status=Store.Status.SUSPENDED).exists()
    billing_page = client.get(reverse("billing:page")).content.decode()
    assert billing_page.count("data-held") == 2

    # Unpaid, suspended for it, then paid: only the store the plan covers starts again.
    failed = stripe_api.invoice(subscription=stripe_subscription, status="open")
    stripe_webhook.post(stripe_api.event("invoice.payment_failed", failed, created=int(time.time()) + 1))
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert dunning_enforce() == [subscription.pk]
    worker_finished(first)
    assert statuses(first) == [Store.Status.SUSPENDED]
    paid = stripe_api.invoice(subscription=stripe_subscription, status="paid")
    stripe_webhook.post(stripe_api.event("invoice.paid", paid, created=int(time.time()) + 2))
    assert [j.kind for j in first.jobs.filter(status=Job.Status.QUEUED)] == [Job.Kind.RESUME]
    assert not Job.objects.filter(store__in=[second, third], status=Job.Status.QUEUED).exists()
    worker_finished(first)

    # Back on a plan with room: the held stores are released and resumed.
    previous = price_switch(stripe_api, stripe_subscription, multi)
    stripe_webhook.post(stripe_api.event("customer.subscription.updated", stripe_subscription, previous=previous))

    assert not StoreHold.objects.exists()
    for store in (second, third):
        assert [j.kind for j in store.jobs.filter(status=Job.Status.QUEUED)] == [Job.Kind.RESUME]
    assert AuditEvent.objects.filter(event="store_released_for_plan_limit").count() == 2


def test_a_store_still_being_built_when_it_is_held_is_suspended_once_it_runs(
    client, woo_plan, stripe_api, stripe_webhook
):
    multi, core = priced("woocommerce-multi-store"), priced("woocommerce-commerce-core")
    subscription, stripe_subscription = paid_signup(client, multi, stripe_api, stripe_webhook, domain="a.test")
    first = subscription.stores.get()
    worker_finished(first)
    building = subscription_store_add(subscription_id=subscription.pk, domain="b.test", actor=subscription.customer)

    previous = price_switch(stripe_api, stripe_subscription, core)
    stripe_webhook.post(stripe_api.event("customer.subscription.updated", stripe_subscription, previous=previous))

    assert StoreHold.objects.get().store == building
    assert stores_billing_enforce() == []  # still provisioning: nothing to suspend yet
    worker_finished(building)
    assert statuses(building) == [Store.Status.ACTIVE]
    assert stores_billing_enforce() == [building.pk]
    assert stores_billing_enforce() == []  # its suspend job is queued; not twice
    worker_finished(building)
    assert statuses(first, building) == [Store.Status.ACTIVE, Store.Status.SUSPENDED]


def test_a_store_busy_when_billing_acts_is_suspended_and_resumed_once_free_but_a_staff_suspension_stays(
    client, priced_plan, stripe_api, stripe_webhook, staff_user
):
    """A customer whose store is being backed up when dunning runs must not keep a running store for free,
    and one whose store is busy when the payment arrives must not stay stopped."""
    from backups.models import BackupRun, RunStatus
    from backups.services.backup import backup_enqueue
    from provisioning.services import job_enqueue

    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    store = subscription.stores.get()
    worker_finished(store)
    now = int(time.time())
    failed = stripe_api.invoice(subscription=stripe_subscription, status="open")
    stripe_webhook.post(stripe_api.event("invoice.payment_failed", failed, created=now + 10))

    backup = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)  # queued: the store is busy
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert dunning_enforce() == [subscription.pk]
    subscription.refresh_from_db()
    assert subscription.status == SS.SUSPENDED
    assert statuses(store) == [Store.Status.ACTIVE] and not store.jobs.filter(kind=Job.Kind.SUSPEND).exists()
    assert stores_billing_enforce() == []  # still busy

    worker_finished(store)  # the backup's job ends
    assert BackupRun.objects.get(pk=backup.pk).status == RunStatus.SUCCEEDED
    assert stores_billing_enforce() == [store.pk]
    assert stores_billing_enforce() == []  # queued once, not twice
    worker_finished(store)
    assert statuses(store) == [Store.Status.SUSPENDED]

    # The payment arrives while the store is busy again: the resume is refused, then queued once it is free.
    busy = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    failed.update(status="paid", amount_paid=failed["amount_due"])
    stripe_webhook.post(stripe_api.event("invoice.paid", failed, created=now + 100))
    subscription.refresh_from_db()
    assert subscription.status == SS.ACTIVE and statuses(store) == [Store.Status.SUSPENDED]
    assert not store.jobs.filter(kind=Job.Kind.RESUME).exists()
    worker_finished(store)  # the backup's job ends
    assert BackupRun.objects.get(pk=busy.pk).status == RunStatus.SUCCEEDED
    assert stores_billing_enforce() == [store.pk]
    worker_finished(store)
    assert statuses(store) == [Store.Status.ACTIVE]

    # Staff suspend it by hand: billing never resumes that, neither the periodic check nor a later payment.
    job_enqueue(store_id=store.pk, kind=Job.Kind.SUSPEND, actor=staff_user)
    worker_finished(store)
    assert statuses(store) == [Store.Status.SUSPENDED]
    assert stores_billing_enforce() == []
    again = stripe_api.invoice(subscription=stripe_subscription, status="open")
    stripe_webhook.post(stripe_api.event("invoice.payment_failed", again, created=now + 200))
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert dunning_enforce() == [subscription.pk]
    again.update(status="paid", amount_paid=again["amount_due"])
    stripe_webhook.post(stripe_api.event("invoice.paid", again, created=now + 300))
    subscription.refresh_from_db()
    assert subscription.status == SS.ACTIVE and statuses(store) == [Store.Status.SUSPENDED]
    assert not store.jobs.filter(kind=Job.Kind.RESUME, status=Job.Status.QUEUED).exists()


def test_a_canceled_store_whose_provisioning_failed_before_it_went_live_is_torn_down_without_a_final_backup(
    client, priced_plan, stripe_api, stripe_webhook
):
    """Its host and port were allocated but no database ever ran: a final backup could only fail, and used to
    hold the teardown, the port and the volumes for ever."""
    from backups.models import BackupRun
    from billing.services.enforcement import subscriptions_teardown_due
    from provisioning.services import _job_claim, _job_fail
    from stores.models import Host

    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    store = subscription.stores.get()
    job = store.jobs.get()
    assert _job_claim(job.pk) is not None
    Store.objects.filter(pk=store.pk).update(host=Host.objects.first(), port=18999)  # the allocate step ran
    _job_fail(job_id=job.pk, step_id=None, error="the database step failed")
    assert statuses(store) == [Store.Status.FAILED]

    stripe_subscription["status"] = "canceled"
    stripe_webhook.post(stripe_api.event("customer.subscription.deleted", stripe_subscription))
    with time_machine.travel(timezone.now() + timedelta(days=60)):
        assert subscriptions_teardown_due() == [subscription.pk]

    assert not BackupRun.objects.filter(store=store).exists()
    assert store.jobs.filter(kind=Job.Kind.TEARDOWN).exists()
    subscription.refresh_from_db()
    assert subscription.status == SS.ENDED


def test_a_refused_platform_switch_is_undone_in_stripe_and_the_merchant_told(
    client, priced_plan, stripe_api, stripe_webhook, django_capture_on_commit_callbacks
):
    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    magento = priced("magento-commerce-core")
    woo_price = priced_plan.stripe_price_id
    mail.outbox.clear()

    previous = price_switch(stripe_api, stripe_subscription, magento)
    with django_capture_on_commit_callbacks(execute=True):
        response = stripe_webhook.post(
            stripe_api.event("customer.subscription.updated", stripe_subscription, previous=previous)
        )

    assert response.status_code == 200, response.content
    subscription.refresh_from_db()
    assert subscription.plan == priced_plan and subscription.stores.get().plan == priced_plan
    # Stripe is switched back to the WooCommerce price, with prorations that credit the refused change.
    [revert] = stripe_api.requests_to("POST", f"subscriptions/{stripe_subscription['id']}")
    assert revert["items"][0]["price"] == woo_price
    assert revert["proration_behavior"] == "create_prorations"
    assert stripe_subscription["items"]["data"][0]["price"]["id"] == woo_price
    mirrored = MirroredSubscription.objects.get(id=stripe_subscription["id"])
    assert mirrored.stripe_data["items"]["data"][0]["price"]["id"] == woo_price
    refusal = AuditEvent.objects.get(event="billing_event_refused")
    assert "between platforms" in refusal.detail["reason"] and refusal.detail["reverted_to"] == woo_price
    [email] = mail.outbox
    assert "was not applied" in email.subject and "not charged" in email.body
    assert not Job.objects.filter(kind=Job.Kind.UPDATE_LIMITS).exists()

    # Stripe's own event for the switch back changes nothing more.
    stripe_webhook.post(stripe_api.event("customer.subscription.updated", stripe_subscription))
    assert len(stripe_api.requests_to("POST", "subscriptions/")) == 1


def test_a_switch_back_that_stripe_cannot_take_fails_the_delivery_and_its_redelivery_applies_it(
    client, priced_plan, stripe_api, stripe_webhook
):
    from djstripe.models import Event, WebhookEventTrigger

    from tests.stripe_fake import StripeFake

    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    magento = priced("magento-commerce-core")
    previous = price_switch(stripe_api, stripe_subscription, magento)
    event = stripe_api.event("customer.subscription.updated", stripe_subscription, previous=previous)
    payload = json.dumps(event)
    stripe = Client(raise_request_exception=False)  # what Stripe sees: a status code, not our traceback
    path = stripe_webhook.url
    stripe_api.fail_next("POST", f"subscriptions/{stripe_subscription['id']}", status=503, times=5)

    down = stripe.post(path, payload, content_type="application/json", **StripeFake.signed_headers(payload, SECRET))

    assert down.status_code == 500
    trigger = WebhookEventTrigger.objects.get(body=payload)
    assert not trigger.processed and trigger.exception  # kept, with what went wrong, for staff
    assert not Event.objects.filter(id=event["id"]).exists()  # so the redelivery is processed afresh
    assert not AuditEvent.objects.filter(event="billing_event_refused").exists()
    assert stripe_subscription["items"]["data"][0]["price"]["id"] == magento.stripe_price_id

    again = stripe.post(path, payload, content_type="application/json", **StripeFake.signed_headers(payload, SECRET))

    assert again.status_code == 200
    assert stripe_subscription["items"]["data"][0]["price"]["id"] == priced_plan.stripe_price_id
    assert AuditEvent.objects.filter(event="billing_event_refused").count() == 1
    subscription.refresh_from_db()
    assert subscription.plan == priced_plan


def test_a_price_that_is_none_of_our_plans_is_refused_for_staff_and_changes_nothing(
    client, priced_plan, stripe_api, stripe_webhook
):
    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    _, stranger = stripe_api.product_with_price(name="Something sold by hand", amount_cents=100)
    stripe_subscription["items"]["data"][0]["price"] = stranger

    response = stripe_webhook.post(stripe_api.event("customer.subscription.updated", stripe_subscription))

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.plan == priced_plan
    refusal = AuditEvent.objects.get(event="billing_event_refused")
    assert "none of our plans" in refusal.detail["reason"] and refusal.detail["price"] == stranger["id"]


# --- events out of order --------------------------------------------------------------------------------


def test_a_late_invoice_paid_does_not_undo_a_newer_payment_failure(client, priced_plan, stripe_api, stripe_webhook):
    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    now = int(time.time())
    paid_earlier = stripe_api.invoice(subscription=stripe_subscription, status="paid")
    failed_later = stripe_api.invoice(subscription=stripe_subscription, status="open")

    stripe_webhook.post(stripe_api.event("invoice.payment_failed", failed_later, created=now + 100))
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert dunning_enforce() == [subscription.pk]
    late = stripe_webhook.post(stripe_api.event("invoice.paid", paid_earlier, created=now + 50))

    assert late.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == SS.SUSPENDED
    assert "ignored" in subscription.events.order_by("pk").last().note
    # The failed invoice itself paid later: that applies.
    failed_later.update(status="paid", amount_paid=failed_later["amount_due"])
    stripe_webhook.post(stripe_api.event("invoice.paid", failed_later, created=now + 200))
    subscription.refresh_from_db()
    assert subscription.status == SS.ACTIVE


def test_a_late_payment_failure_does_not_undo_a_newer_payment(
    client, priced_plan, stripe_api, stripe_webhook, django_capture_on_commit_callbacks
):
    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    now = int(time.time())
    invoice = stripe_api.invoice(subscription=stripe_subscription, status="open")
    retried = stripe_api.invoice(subscription=stripe_subscription, status="open")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhook.post(stripe_api.event("invoice.payment_failed", invoice, created=now + 10))
        invoice.update(status="paid", amount_paid=invoice["amount_due"])
        stripe_webhook.post(stripe_api.event("invoice.paid", invoice, created=now + 100))
        stripe_webhook.post(stripe_api.event("invoice.payment_failed", retried, created=now + 50))  # older
    subscription.refresh_from_db()
    assert subscription.status == SS.ACTIVE

    # A failure newer than every payment, for an invoice Stripe has paid by now: its invoice.paid is on the
    # way, so the subscription is not marked past due and no one is e-mailed.
    retried.update(status="paid", amount_paid=retried["amount_due"])
    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhook.post(stripe_api.event("invoice.payment_failed", retried, created=now + 300))
    subscription.refresh_from_db()
    assert subscription.status == SS.ACTIVE
    assert "Stripe has it paid by now" in subscription.events.order_by("pk").last().note
    assert len(mail.outbox) == 1  # only the first, real failure


# --- delayed payment methods ----------------------------------------------------------------------------


def bank_debit_checkout(client, plan, stripe_api) -> tuple[Subscription, dict, dict]:
    subscription = signup(client, plan)
    session, stripe_subscription = complete_checkout(
        stripe_api, subscription.checkout_session_id, price_id=plan.stripe_price_id
    )
    session["payment_status"] = "unpaid"  # SEPA / ACH: Checkout is complete, the money is not there yet
    stripe_subscription["status"] = "incomplete"
    return subscription, session, stripe_subscription


def test_a_bank_debit_waits_for_the_money_before_the_store_is_built(client, priced_plan, stripe_api, stripe_webhook):
    subscription, session, _ = bank_debit_checkout(client, priced_plan, stripe_api)

    assert stripe_webhook.post(stripe_api.event("checkout.session.completed", session)).status_code == 200

    subscription.refresh_from_db()
    store = subscription.stores.get()
    assert subscription.status == SS.PAYMENT_PENDING
    assert store.status == Store.Status.AWAITING_PAYMENT and not store.jobs.exists()
    page = client.get(reverse("billing:checkout_success") + f"?session_id={session['id']}").content.decode()
    assert "your payment is being processed" in page and "data-waiting" not in page
    assert "being processed" in client.get(reverse("billing:page")).content.decode()

    session["payment_status"] = "paid"
    response = stripe_webhook.post(stripe_api.event("checkout.session.async_payment_succeeded", session))

    assert response.status_code == 200
    subscription.refresh_from_db()
    store.refresh_from_db()
    assert subscription.status == SS.ACTIVE and store.status == Store.Status.QUEUED
    assert [j.kind for j in store.jobs.all()] == [Job.Kind.PROVISION]
    assert "your payment was received" in client.get(reverse("billing:checkout_success")).content.decode()


def test_a_bank_debit_that_fails_builds_nothing_cancels_stripe_and_lets_the_merchant_pay_again(
    client, priced_plan, stripe_api, stripe_webhook, django_capture_on_commit_callbacks
):
    subscription, session, stripe_subscription = bank_debit_checkout(client, priced_plan, stripe_api)
    stripe_webhook.post(stripe_api.event("checkout.session.completed", session))
    mail.outbox.clear()

    # The bank returns the debit 20 hours after signup (the merchant's browser session has long timed out).
    client.logout()
    with time_machine.travel(timezone.now() + timedelta(hours=20)):
        with django_capture_on_commit_callbacks(execute=True):
            response = stripe_webhook.post(stripe_api.event("checkout.session.async_payment_failed", session))
    client.force_login(subscription.customer)

    assert response.status_code == 200
    subscription.refresh_from_db()
    store = subscription.stores.get()
    assert subscription.status == SS.CHECKOUT and subscription.stripe_subscription_id is None
    assert store.status == Store.Status.AWAITING_PAYMENT and not store.jobs.exists()
    # The Stripe subscription Checkout opened is canceled, so it never bills.
    assert stripe_api.requests_to("DELETE", f"subscriptions/{stripe_subscription['id']}")
    assert stripe_subscription["status"] == "canceled"
    [email] = mail.outbox
    assert "did not go through" in email.subject and store.domain in email.body
    page = client.get(reverse("billing:checkout_success") + f"?session_id={session['id']}").content.decode()
    assert "Your payment did not go through" in page
    assert reverse("billing:checkout_resume", args=[subscription.pk]) in page
    # The domain is held for a full day from the failure, not from the signup.
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        assert checkouts_abandoned_cleanup() == []
    client.logout()
    with time_machine.travel(timezone.now() + timedelta(hours=21)):
        client.force_login(subscription.customer)
        response = client.post(reverse("billing:checkout_resume", args=[subscription.pk]))
    assert response.status_code == 302 and response["Location"].startswith("https://checkout.stripe.com/")


def test_a_subscription_ended_in_stripe_while_its_payment_is_processing_waits_for_a_payment_again(
    client, priced_plan, stripe_api, stripe_webhook
):
    subscription, session, stripe_subscription = bank_debit_checkout(client, priced_plan, stripe_api)
    stripe_webhook.post(stripe_api.event("checkout.session.completed", session))
    stripe_subscription["status"] = "canceled"

    response = stripe_webhook.post(stripe_api.event("customer.subscription.deleted", stripe_subscription))

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == SS.CHECKOUT and subscription.stripe_subscription_id is None
    assert subscription.stores.get().status == Store.Status.AWAITING_PAYMENT and not Job.objects.exists()


def test_a_payment_succeeded_event_for_an_unpaid_session_is_refused(client, priced_plan, stripe_api, stripe_webhook):
    subscription, session, _ = bank_debit_checkout(client, priced_plan, stripe_api)

    response = stripe_webhook.post(stripe_api.event("checkout.session.async_payment_succeeded", session))

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == SS.CHECKOUT and not Job.objects.exists()
    refusal = AuditEvent.objects.get(event="billing_event_refused")
    assert "not paid" in refusal.detail["reason"]


def test_a_failure_that_overtakes_its_checkout_completed_is_not_undone_by_it(
    client, priced_plan, stripe_api, stripe_webhook
):
    subscription, session, _ = bank_debit_checkout(client, priced_plan, stripe_api)
    now = int(time.time())

    stripe_webhook.post(stripe_api.event("checkout.session.async_payment_failed", session, created=now + 60))
    late = stripe_webhook.post(stripe_api.event("checkout.session.completed", session, created=now))

    assert late.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == SS.CHECKOUT and subscription.stripe_subscription_id is None
    assert not Job.objects.exists()


# --- a double click on "pay now" ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_pay_now_clicks_open_one_checkout_session(
    _data_migrations_put_back, client, priced_plan, stripe_api
):
    subscription = signup(client, priced_plan)
    first_session = subscription.checkout_session_id
    url = reverse("billing:checkout_resume", args=[subscription.pk])
    # Stripe answers slowly, so the two requests overlap between reading the subscription and writing it.
    stripe_api.slow("POST", r"checkout/sessions(/[^/]+/expire)?", 0.5)
    results: list = [None, None]
    start = threading.Barrier(2)

    def click(index: int) -> None:
        try:
            browser = Client()
            browser.force_login(subscription.customer)
            start.wait()
            results[index] = browser.post(url)
        finally:
            connection.close()

    with time_machine.travel(timezone.now() + timedelta(minutes=5)):  # back from Stripe, then a double click
        threads = [threading.Thread(target=click, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    creates = stripe_api.requests_to("POST", "checkout/sessions")
    assert len([c for c in creates if "mode" in c]) == 2  # the signup's and one for the double click
    subscription.refresh_from_db()
    assert [r.status_code for r in results] == [302, 302]
    assert {r["Location"] for r in results} == {f"https://checkout.stripe.com/c/pay/{subscription.checkout_session_id}"}
    open_sessions = [
        o["id"] for o in stripe_api.objects.values() if o["object"] == "checkout.session" and o["status"] == "open"
    ]
    assert open_sessions == [subscription.checkout_session_id] and first_session not in open_sessions
