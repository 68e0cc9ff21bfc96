"""Signup to payment: a plan, the signup form, Stripe Checkout and the signed checkout.session.completed webhook."""

import pytest
from django.conf import settings
from django.urls import reverse

from billing.models import Plan, Subscription
from provisioning.models import ProvisioningJob
from stores.models import Store, StoreName
from tests.billing_helpers import SIGNUP, complete_checkout, signup

pytestmark = pytest.mark.django_db


def test_signup_redirects_to_a_subscription_checkout_with_the_store_as_reference(client, priced_plan, stripe_api):
    response = client.post(
        reverse("billing:signup", args=[priced_plan.slug]), {**SIGNUP, "email": "Merchant@Example.com"}
    )

    subscription = Subscription.objects.get()
    store = subscription.stores.get()
    assert response.status_code == 302
    assert response["Location"] == f"https://checkout.stripe.com/c/pay/{subscription.checkout_session_id}"
    [sent] = stripe_api.requests_to("POST", "checkout/sessions")
    assert sent["mode"] == "subscription"
    assert sent["line_items"] == [{"price": priced_plan.stripe_price_id, "quantity": "1"}]
    assert sent["client_reference_id"] == str(store.pk)
    assert sent["metadata"] == {
        "subscription_id": str(subscription.pk),
        "store_id": str(store.pk),
        "customer_id": str(subscription.customer_id),
        "plan": priced_plan.slug,
    }
    assert sent["allow_promotion_codes"] is True
    assert sent["success_url"].endswith("/billing/checkout/success/?session_id={CHECKOUT_SESSION_ID}")
    assert store.status == Store.Status.AWAITING_PAYMENT
    # The signup's domain reserves nothing: it waits for its DNS proof; the store's name is its platform name.
    assert store.domain.endswith(f".{settings.PLATFORM_DOMAIN}")
    assert store.names.get(name="shop.example.com").status == StoreName.Status.PENDING
    assert subscription.customer.email == "merchant@example.com"
    assert subscription.customer.company == "Example Goods"
    # Signed in, so the success page can follow the store.
    assert client.get(reverse("billing:page")).status_code == 200


def test_checkout_completed_webhook_queues_provisioning_and_the_success_page_follows_it(
    client, priced_plan, stripe_api, stripe_webhook
):
    subscription = signup(client, priced_plan)
    session, stripe_subscription = complete_checkout(
        stripe_api, subscription.checkout_session_id, price_id=priced_plan.stripe_price_id
    )

    response = stripe_webhook.post(stripe_api.event("checkout.session.completed", session))

    assert response.status_code == 200, response.content
    subscription.refresh_from_db()
    store = subscription.stores.get()
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.stripe_subscription_id == stripe_subscription["id"]
    assert subscription.stripe_customer_id == session["customer"]
    assert store.status == Store.Status.QUEUED
    job = store.jobs.get()
    assert job.kind == ProvisioningJob.Kind.PROVISION
    page = client.get(reverse("billing:checkout_success") + f"?session_id={session['id']}")
    assert page.status_code == 200
    body = page.content.decode()
    assert "your payment was received" in body
    assert reverse("stores:setup_progress", args=[store.pk]) in body  # it follows the setup job, whatever comes next
    assert "Reserve a host and a port" in body  # the checklist of the queued job


def test_unknown_or_inactive_plan_gets_a_clear_404_page(client, woo_plan):
    assert "not available" in client.get("/signup/no-such-plan/").content.decode()
    Plan.objects.filter(pk=woo_plan.pk).update(active=False)
    response = client.get(reverse("billing:signup", args=[woo_plan.slug]))
    assert response.status_code == 404
    assert "This plan is not available" in response.content.decode()
