"""Stripe faked at its HTTP boundary (tests/stripe_fake.py), and webhooks signed and POSTed to dj-stripe's
real endpoint."""

import json

import pytest

WEBHOOK_SECRET = "whsec_test_shophosting_webhook_secret"


@pytest.fixture
def stripe_api():
    """Stripe's HTTP API faked at the boundary (tests/stripe_fake.py). Any request it does not answer fails."""
    import responses
    import stripe

    from tests.stripe_fake import StripeFake

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield StripeFake(mock, stripe.api_base)


@pytest.fixture
def stripe_webhook(db, client):
    """POSTs events to dj-stripe's real webhook endpoint, signed with the endpoint's secret."""
    from tests.stripe_fake import StripeFake, webhook_endpoint_create

    endpoint = webhook_endpoint_create(
        endpoint_id="we_test_shophosting", secret=WEBHOOK_SECRET, url="https://shophosting.local/stripe/webhook/"
    )

    class Webhook:
        url = f"/stripe/webhook/{endpoint.djstripe_uuid}/"

        def post(self, event: dict, *, secret: str = WEBHOOK_SECRET, headers: dict | None = None):
            payload = json.dumps(event)
            signed = StripeFake.signed_headers(payload, secret) if headers is None else headers
            return client.post(self.url, data=payload, content_type="application/json", **signed)

    return Webhook()


@pytest.fixture
def priced_plan(woo_plan, stripe_api):
    """The WooCommerce Commerce Core plan, created in (fake) Stripe through the pricing sync."""
    from billing.services.plans import plan_price_create

    return plan_price_create(plan_id=woo_plan.pk)


@pytest.fixture
def live_subscription(
    client,
    priced_plan,
    stripe_api,
    stripe_webhook,
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    """A paid signup whose store was provisioned by a real worker (Docker: under the lock); the client is
    signed in as its customer. Returns our subscription and Stripe's."""
    from stores.models import Store
    from tests.billing_helpers import paid_signup

    with django_capture_on_commit_callbacks(execute=True):
        subscription, stripe_subscription = paid_signup(
            client, priced_plan, stripe_api, stripe_webhook, domain="live1.test"
        )
    run_provisioning_worker()
    store = subscription.stores.get()
    assert store.status == Store.Status.ACTIVE, store.jobs.last().error
    return subscription, stripe_subscription
