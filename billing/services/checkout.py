"""Buying a plan: the signup (a subscription awaiting checkout and its first store awaiting payment), the
Stripe Checkout Session it is paid through, and the cleanup of signups that are never paid. What Stripe
reports back about a checkout is handled in stripe_events."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import customer_create
from billing import stripe_gateway
from billing.exceptions import BillingRefused
from billing.models import Plan, Subscription, SubscriptionEvent
from billing.services.subscriptions import subscription_transition
from shophosting.core.transitions import InvalidTransition
from stores.models import Store
from stores.services import store_create, store_transition

SS = Subscription.Status
# A second "pay now" within this many seconds of the last (a double click, a reload) gets the same session.
CHECKOUT_REUSE_SECONDS = 60


@transaction.atomic
def signup_create(
    *,
    plan: Plan,
    domain: str = "",
    customer: User | None = None,
    email: str = "",
    password: str = "",
    company: str = "",
) -> Subscription:
    """A subscription awaiting checkout and its first store awaiting payment, for a new customer (created here)
    or a signed-in one; all or nothing. The store answers on its platform name; `domain`, optional, is added
    as a custom domain waiting for its DNS proof: a signup reserves no domain (stores/README.md, "Names")."""
    if not plan.active:
        raise BillingRefused("This plan is no longer offered.")
    if customer is None:
        customer = customer_create(email=email, password=password, company=company)
    subscription = Subscription.objects.create(customer=customer, plan=plan)
    SubscriptionEvent.objects.create(subscription=subscription, new_status=subscription.status, note="signup")
    store_create(customer=customer, plan=plan, custom_domain=domain, subscription=subscription, actor=customer)
    return subscription


def checkout_start(*, subscription_id: int, success_url: str, cancel_url: str) -> str:
    """Open a Stripe Checkout Session for a subscription awaiting checkout; returns the URL to send the customer to.

    A previous open session is expired first, so one subscription is never paid twice. Requests for the same
    subscription are serialised on its row: the row lock is held across the Stripe calls on purpose, because
    two requests interleaving here (a double click) would each open a session, and the one not recorded could
    still be paid, leaving a Stripe subscription the platform does not know. The second request finds the
    session the first just opened and sends the customer to it."""
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update().select_related("plan", "customer").get(pk=subscription_id)
        )
        if subscription.status != SS.CHECKOUT:
            raise BillingRefused("This subscription is already paid for.")
        if subscription.plan.stripe_price_id is None:
            raise BillingRefused("This plan cannot be bought online yet. Please contact sales.")
        store = subscription.stores.order_by("pk").first()
        if subscription.checkout_session_id:
            started = subscription.checkout_started_at
            if started and timezone.now() - started < timedelta(seconds=CHECKOUT_REUSE_SECONDS):
                current = stripe_gateway.checkout_session_retrieve(session_id=subscription.checkout_session_id)
                if current["status"] == "open" and current.get("url"):
                    return current["url"]
            status = stripe_gateway.checkout_session_expire(session_id=subscription.checkout_session_id)
            if status == "complete":
                # Paid a moment ago; checkout.session.completed is on its way. A new session could be paid again.
                raise BillingRefused("Your payment was received; your store is being set up. Reload in a moment.")
        metadata = {
            "subscription_id": str(subscription.pk),
            "store_id": str(store.pk),
            "customer_id": str(subscription.customer_id),
            "plan": subscription.plan.slug,
        }
        session = stripe_gateway.checkout_session_create(
            price_id=subscription.plan.stripe_price_id,
            customer_email=subscription.customer.email,
            client_reference_id=str(store.pk),
            metadata=metadata,
            success_url=success_url,
            cancel_url=cancel_url,
        )
        # update(), not save(): updated_at is the abandonment clock and opening a session does not reset it.
        Subscription.objects.filter(pk=subscription.pk).update(
            checkout_session_id=session["id"], checkout_started_at=timezone.now()
        )
    return session["url"]


def checkouts_abandoned_cleanup(*, now=None) -> list[int]:
    """Signups that never paid within BILLING_CHECKOUT_ABANDON_HOURS (counted again from a delayed payment that
    failed): the Checkout Session is expired and the store deleted, which frees its domain. The customer's
    account is kept. Run periodically."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.BILLING_CHECKOUT_ABANDON_HOURS)
    abandoned = []
    for subscription in Subscription.objects.filter(status=SS.CHECKOUT, created_at__lte=cutoff, updated_at__lte=cutoff):
        if subscription.checkout_session_id:
            status = stripe_gateway.checkout_session_expire(session_id=subscription.checkout_session_id)
            if status == "complete":
                continue  # paid at the last moment: checkout.session.completed activates it
        with transaction.atomic():
            try:
                subscription_transition(subscription_id=subscription.pk, to=SS.ABANDONED, note="checkout abandoned")
            except InvalidTransition:
                continue  # paid while we were expiring the session
            for store in subscription.stores.filter(status=Store.Status.AWAITING_PAYMENT):
                store_transition(store_id=store.pk, to=Store.Status.DELETING, note="checkout abandoned")
                store_transition(store_id=store.pk, to=Store.Status.DELETED, note="nothing was built; domain freed")
        abandoned.append(subscription.pk)
    return abandoned
