"""The only module that writes to Stripe (stripe-python). Reads come from dj-stripe's mirror.

Every call passes the API key explicitly, so nothing depends on stripe-python's global state, and each
object that Stripe returns is synced into the dj-stripe mirror at once, so the admin and the customer
pages agree with Stripe without waiting for the webhook.
"""

import logging

import stripe
from django.utils import timezone
from djstripe import models as djstripe_models
from djstripe.settings import djstripe_settings

logger = logging.getLogger(__name__)


class StripeNotConfigured(Exception):
    """No secret key is set for the current mode."""


class StripeFailure(Exception):
    """Stripe refused or could not be reached; the message is safe to show to staff."""


def _api_key() -> str:
    key = djstripe_settings.get_default_api_key(livemode=None)
    if not key:
        raise StripeNotConfigured(
            "Stripe is not configured: set STRIPE_TEST_SECRET_KEY (or STRIPE_LIVE_SECRET_KEY with STRIPE_LIVE_MODE)."
        )
    return key


def _call(method, *args, **params):
    try:
        return method(*args, api_key=_api_key(), stripe_version=djstripe_settings.STRIPE_API_VERSION, **params)
    except stripe.StripeError as exc:
        logger.warning("stripe call %s failed: %s", getattr(method, "__qualname__", method), exc)
        raise StripeFailure(getattr(exc, "user_message", None) or str(exc)) from exc


def checkout_session_create(
    *,
    price_id: str,
    customer_email: str,
    client_reference_id: str,
    metadata: dict[str, str],
    success_url: str,
    cancel_url: str,
):
    """A subscription-mode Checkout Session; the customer is redirected to its `url`."""
    return _call(
        stripe.checkout.Session.create,
        mode="subscription",
        line_items=[{"price": price_id, "quantity": 1}],
        customer_email=customer_email,
        client_reference_id=client_reference_id,
        metadata=metadata,
        subscription_data={"metadata": metadata},
        allow_promotion_codes=True,
        success_url=success_url,
        cancel_url=cancel_url,
    )


def checkout_session_expire(*, session_id: str) -> str:
    """Close an open Checkout Session so an abandoned signup can no longer be paid. Returns the session's
    status afterwards: "expired", or "complete" when the customer paid just before."""
    try:
        return _call(stripe.checkout.Session.expire, session_id)["status"]
    except StripeFailure as exc:
        # Not open any more: either it expired by itself or it was paid. Ask which.
        logger.info("checkout session %s not expired: %s", session_id, exc)
        return _call(stripe.checkout.Session.retrieve, session_id)["status"]


def checkout_session_retrieve(*, session_id: str) -> dict:
    """The session as Stripe has it now: `status` (open, complete, expired), `payment_status` and `url`."""
    return _call(stripe.checkout.Session.retrieve, session_id).to_dict()


def billing_portal_url(*, customer_id: str, return_url: str) -> str:
    return _call(stripe.billing_portal.Session.create, customer=customer_id, return_url=return_url)["url"]


def product_create(*, name: str, description: str, metadata: dict[str, str]):
    product = _call(stripe.Product.create, name=name, description=description or None, metadata=metadata)
    return djstripe_models.Product.sync_from_stripe_data(product, api_key=_api_key())


def product_update(*, product_id: str, name: str, description: str, metadata: dict[str, str], default_price=None):
    params = {"name": name, "description": description or "", "metadata": metadata}
    if default_price:
        params["default_price"] = default_price
    product = _call(stripe.Product.modify, product_id, **params)
    return djstripe_models.Product.sync_from_stripe_data(product, api_key=_api_key())


def price_create(*, product_id: str, amount_cents: int, nickname: str, metadata: dict[str, str]):
    price = _call(
        stripe.Price.create,
        product=product_id,
        unit_amount=amount_cents,
        currency="usd",
        recurring={"interval": "month"},
        nickname=nickname,
        metadata=metadata,
    )
    return djstripe_models.Price.sync_from_stripe_data(price, api_key=_api_key())


def price_update(*, price_id: str, nickname: str | None = None, active: bool | None = None):
    """Only what Stripe lets change on a price: its nickname and whether it is active."""
    params = {}
    if nickname is not None:
        params["nickname"] = nickname
    if active is not None:
        params["active"] = active
    price = _call(stripe.Price.modify, price_id, **params)
    return djstripe_models.Price.sync_from_stripe_data(price, api_key=_api_key())


def subscription_price_set(*, subscription_id: str, price_id: str, prorate: bool = False) -> dict:
    """Move a subscription's single item to another price. By default from the next period on (no proration);
    with `prorate`, Stripe credits the unused time of the current price and charges the new one for the rest,
    which is how a change the platform refused is undone without the customer paying for it."""
    subscription = _call(stripe.Subscription.retrieve, subscription_id)
    item_id = subscription["items"]["data"][0]["id"]
    updated = _call(
        stripe.Subscription.modify,
        subscription_id,
        items=[{"id": item_id, "price": price_id}],
        proration_behavior="create_prorations" if prorate else "none",
    )
    djstripe_models.Subscription.sync_from_stripe_data(updated, api_key=_api_key())
    return updated.to_dict()


def subscription_cancel(*, subscription_id: str) -> dict:
    """Cancel a subscription now (staff deleting a customer's last store); Stripe stops charging at once.
    An already canceled subscription is not an error: the result is the same."""
    try:
        canceled = _call(stripe.Subscription.cancel, subscription_id)
    except StripeFailure:
        current = _call(stripe.Subscription.retrieve, subscription_id)
        if current["status"] != "canceled":
            raise
        canceled = current
    djstripe_models.Subscription.sync_from_stripe_data(canceled, api_key=_api_key())
    return canceled.to_dict()


def customer_delete(*, customer_id: str) -> None:
    """Delete a customer in Stripe once their closed account is purged: Stripe drops their name, e-mail
    address, addresses and payment methods and keeps their invoices, which the merchant's accounts need.
    An already deleted customer is not an error. The mirror keeps the row, marked purged and emptied."""
    try:
        _call(stripe.Customer.delete, customer_id)
    except StripeFailure:
        current = _call(stripe.Customer.retrieve, customer_id)
        if not current.get("deleted"):
            raise
    djstripe_models.Customer.objects.filter(id=customer_id).update(email="", date_purged=timezone.now())
