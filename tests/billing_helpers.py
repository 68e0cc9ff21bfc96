"""Shared steps for the billing tests: a priced plan, a signup, and Stripe completing the checkout."""

from django.urls import reverse

from billing.models import Subscription

SIGNUP = {
    "email": "merchant@example.com",
    "password": "a long and unusual passphrase 42",
    "company": "Example Goods",
    "domain": "shop.example.com",
}


def signup(client, plan, **overrides) -> Subscription:
    response = client.post(reverse("billing:signup", args=[plan.slug]), {**SIGNUP, **overrides})
    assert response.status_code == 302, response.content.decode()[:2000]
    return Subscription.objects.filter(customer__email=overrides.get("email", SIGNUP["email"])).latest("pk")


def complete_checkout(stripe_api, session_id: str, *, price_id: str) -> tuple[dict, dict]:
    """What Stripe does when the customer pays: a customer, a subscription and a completed session."""
    session = stripe_api.objects[session_id]
    customer = stripe_api.add("customer", email=session["customer_email"])
    subscription = stripe_api.subscription(
        customer=customer["id"], price=stripe_api.objects[price_id], metadata=session["metadata"]
    )
    session.update(status="complete", payment_status="paid", customer=customer["id"], subscription=subscription["id"])
    return session, subscription


def paid_signup(client, plan, stripe_api, stripe_webhook, **overrides) -> tuple[Subscription, dict]:
    """Signup, checkout and the signed checkout.session.completed webhook; returns the Stripe subscription."""
    subscription = signup(client, plan, **overrides)
    session, stripe_subscription = complete_checkout(
        stripe_api, subscription.checkout_session_id, price_id=plan.stripe_price_id
    )
    response = stripe_webhook.post(stripe_api.event("checkout.session.completed", session))
    assert response.status_code == 200, response.content
    subscription.refresh_from_db()
    return subscription, stripe_subscription
