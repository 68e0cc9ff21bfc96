"""Stripe webhooks through dj-stripe's real endpoint: signatures, replays, unknown events and hostile payloads."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from djstripe.models import Event, WebhookEventTrigger

from accounts.models import AuditEvent
from billing.models import Subscription
from billing.services.checkout import checkouts_abandoned_cleanup
from provisioning.models import ProvisioningJob
from stores.models import Store, StoreName
from tests.billing_helpers import complete_checkout, paid_signup, signup

pytestmark = pytest.mark.django_db


def test_bad_signature_gets_400_and_nothing_is_processed(client, priced_plan, stripe_api, stripe_webhook):
    subscription = signup(client, priced_plan)
    session, _ = complete_checkout(stripe_api, subscription.checkout_session_id, price_id=priced_plan.stripe_price_id)
    event = stripe_api.event("checkout.session.completed", session)

    wrong_secret = stripe_webhook.post(event, secret="whsec_not_the_endpoint_secret")
    no_signature = stripe_webhook.post(event, headers={})
    tampered = stripe_api.signed_headers(json.dumps(event), "whsec_test_shophosting_webhook_secret")
    event["data"]["object"]["client_reference_id"] = "999"
    tampered_body = stripe_webhook.post(event, headers=tampered)

    assert [r.status_code for r in (wrong_secret, no_signature, tampered_body)] == [400, 400, 400]
    assert not Event.objects.exists()
    # dj-stripe keeps the rejected deliveries (for forensics) marked invalid; none was processed.
    assert not WebhookEventTrigger.objects.filter(valid=True).exists()
    assert not WebhookEventTrigger.objects.filter(processed=True).exists()
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CHECKOUT
    assert subscription.stores.get().status == Store.Status.AWAITING_PAYMENT
    assert not ProvisioningJob.objects.exists()


def test_the_same_event_delivered_three_times_has_one_effect(client, priced_plan, stripe_api, stripe_webhook):
    subscription = signup(client, priced_plan)
    session, _ = complete_checkout(stripe_api, subscription.checkout_session_id, price_id=priced_plan.stripe_price_id)
    event = stripe_api.event("checkout.session.completed", session)

    statuses = [stripe_webhook.post(event).status_code for _ in range(3)]
    # Stripe may also send the same fact as a second event id: still one provisioning job.
    statuses.append(stripe_webhook.post(stripe_api.event("checkout.session.completed", session)).status_code)

    assert statuses == [200, 200, 200, 200]
    assert Event.objects.filter(type="checkout.session.completed").count() == 2
    assert ProvisioningJob.objects.filter(store__subscription=subscription).count() == 1
    assert subscription.events.filter(new_status=Subscription.Status.ACTIVE).count() == 1


def test_a_foreign_store_id_in_the_checkout_metadata_is_refused(
    client, priced_plan, stripe_api, stripe_webhook, security_log
):
    victim = signup(client, priced_plan, email="victim@example.com", domain="victim.example.com")
    client.logout()
    attacker = signup(client, priced_plan, email="attacker@example.com", domain="attacker.example.com")
    victim_store = victim.stores.get()
    session, _ = complete_checkout(stripe_api, attacker.checkout_session_id, price_id=priced_plan.stripe_price_id)
    session["client_reference_id"] = str(victim_store.pk)
    session["metadata"] = {**session["metadata"], "store_id": str(victim_store.pk)}

    response = stripe_webhook.post(stripe_api.event("checkout.session.completed", session))

    assert response.status_code == 200  # accepted, so Stripe stops retrying, but nothing happens
    for subscription in (victim, attacker):
        subscription.refresh_from_db()
        assert subscription.status == Subscription.Status.CHECKOUT
        assert subscription.stores.get().status == Store.Status.AWAITING_PAYMENT
    assert not ProvisioningJob.objects.exists()
    refusal = AuditEvent.objects.get(event="billing_event_refused")
    assert "not its own" in refusal.detail["reason"]
    assert any(line["event"] == "billing_event_refused" for line in security_log())


def test_an_unknown_session_and_an_unknown_event_type_are_accepted_and_ignored(
    client, priced_plan, stripe_api, stripe_webhook
):
    stranger = stripe_api.add("checkout_session", status="complete", client_reference_id="1")
    unknown_session = stripe_webhook.post(stripe_api.event("checkout.session.completed", stranger))
    unknown_type = stripe_webhook.post(stripe_api.event("balance.available", {"object": "balance", "id": None}))

    assert (unknown_session.status_code, unknown_type.status_code) == (200, 200)
    assert not ProvisioningJob.objects.exists()
    assert AuditEvent.objects.filter(event="billing_event_refused").count() == 1


def test_abandoned_checkouts_are_expired_after_24_hours_and_free_the_domain(client, priced_plan, stripe_api):
    subscription = signup(client, priced_plan)
    session_id = subscription.checkout_session_id

    with time_machine.travel(timezone.now() + timedelta(hours=23)):
        assert checkouts_abandoned_cleanup() == []
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        assert checkouts_abandoned_cleanup() == [subscription.pk]

    subscription.refresh_from_db()
    store = subscription.stores.get()
    assert subscription.status == Subscription.Status.ABANDONED
    assert store.status == Store.Status.DELETED and store.live_domain is None
    assert stripe_api.objects[session_id]["status"] == "expired"
    assert subscription.customer.is_active  # the account is kept
    # The domain is free for the next signup.
    client.logout()
    again = signup(client, priced_plan, email="second@example.com")
    assert again.stores.get().names.get(name="shop.example.com").status == StoreName.Status.PENDING


def test_cancel_page_keeps_the_account_and_offers_to_complete_the_payment(client, priced_plan, stripe_api):
    subscription = signup(client, priced_plan)
    first_session = subscription.checkout_session_id

    page = client.get("/billing/checkout/cancel/")
    assert page.status_code == 200
    assert "Your account is kept" in page.content.decode()
    # Minutes later, not a double click (that gets the same session: test_billing_trust).
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        response = client.post(f"/billing/checkout/{subscription.pk}/")

    subscription.refresh_from_db()
    assert response.status_code == 302 and subscription.checkout_session_id != first_session
    assert response["Location"].endswith(subscription.checkout_session_id)
    # The earlier session is closed, so the same signup can never be paid twice.
    assert stripe_api.objects[first_session]["status"] == "expired"


def test_checkout_that_stripe_refuses_keeps_the_signup_and_says_so(client, priced_plan, stripe_api):
    stripe_api.fail_next("POST", "checkout/sessions", status=503, message="Stripe is having a bad day", times=3)

    response = client.post(
        f"/signup/{priced_plan.slug}/",
        {"email": "m@example.com", "password": "a long and unusual passphrase 42", "company": "M", "domain": "m.test"},
    )

    assert response.status_code == 503
    assert "We could not open the payment page" in response.content.decode()
    subscription = Subscription.objects.get(customer__email="m@example.com")
    assert subscription.stores.get().names.get(name="m.test").status == StoreName.Status.PENDING
    # Trying again works once Stripe answers.
    assert client.post(f"/billing/checkout/{subscription.pk}/").status_code == 302


def test_signup_form_errors_are_clear_and_lose_nothing(client, priced_plan, stripe_api, stripe_webhook):
    paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    client.logout()

    response = client.post(
        f"/signup/{priced_plan.slug}/",
        {"email": "merchant@example.com", "password": "short", "company": "", "domain": "http://shop.example.com/x"},
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "An account with this e-mail already exists" in body
    assert "This password is too short" in body
    assert "without http://" in body
    assert "This field is required" in body
    assert 'value="merchant@example.com"' in body  # what was typed is kept
    taken = client.post(
        f"/signup/{priced_plan.slug}/",
        {
            "email": "new@example.com",
            "password": "a long and unusual passphrase 42",
            "company": "N",
            "domain": "SHOP.example.com",
        },
    )
    # A domain waiting for its proof holds nothing: another signup may name it too (only DNS decides).
    assert taken.status_code == 302 and Subscription.objects.count() == 2
    assert StoreName.objects.filter(name="shop.example.com", status=StoreName.Status.PENDING).count() == 2


def test_a_checkout_paid_at_the_last_moment_is_not_abandoned(client, priced_plan, stripe_api, stripe_webhook):
    subscription = signup(client, priced_plan)
    session, _ = complete_checkout(stripe_api, subscription.checkout_session_id, price_id=priced_plan.stripe_price_id)

    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        assert checkouts_abandoned_cleanup() == []  # Stripe says the session is complete

    assert stripe_webhook.post(stripe_api.event("checkout.session.completed", session)).status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.stores.get().status == Store.Status.QUEUED
