"""Reactions to Stripe's events (billing/webhooks.py passes each one here): checkout completed or its delayed
payment settled, invoices paid or failed, the subscription updated (a plan change) or deleted. Each event is
checked against what we sent Stripe, against newer events already applied, and against the current state in
dj-stripe's mirror before it changes anything (billing/README.md, "What a webhook is trusted with")."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djstripe.models import Invoice
from djstripe.models import Subscription as MirroredSubscription

from accounts.services import audit_record
from backups.services.backup import final_backup_request
from billing import stripe_gateway
from billing.models import Plan, Subscription, money_text
from billing.services.dunning import grace_period
from billing.services.enforcement import store_suspended_by_billing, stores_fit_plan
from billing.services.subscriptions import (
    subscription_live_stores,
    subscription_note,
    subscription_store_job_enqueue,
    subscription_transition,
)
from provisioning.models import ProvisioningJob as Job
from provisioning.orders import store_order_paid
from shophosting.core.emails import email_send
from stores.models import Store
from stores.services import store_plan_change

logger = logging.getLogger(__name__)

SS = Subscription.Status


def _refuse(*, stripe_event_id: str, reason: str, **detail) -> None:
    # A signed event that does not match what we sent to Stripe: record it for staff and change nothing.
    logger.warning("stripe event %s refused: %s %s", stripe_event_id, reason, detail)
    audit_record(event="billing_event_refused", stripe_event_id=stripe_event_id, reason=reason, **detail)


@contextmanager
def _payment_event_applied(
    subscription: Subscription, *, outcome: str, what: str, stripe_event_id: str, created
) -> Iterator[Subscription | None]:
    """A transaction holding the subscription's row lock, in which a payment event is applied or not: yields
    the locked subscription when the event still applies, None when it does not.

    Stripe does not deliver events in order. A "paid" event older than the newest applied payment failure
    (or a failure older than the newest applied payment) is stale: it is recorded on the subscription and
    changes nothing. An event that applies moves the subscription's newest paid or failed time. `outcome` is
    "paid", "failed" or "pending" (a checkout whose payment is processing, stale against either)."""
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().select_related("plan", "customer").get(pk=subscription.pk)
        newer = None
        if created is not None:
            if (
                outcome in ("paid", "pending")
                and locked.payment_failed_event_at
                and locked.payment_failed_event_at > created
            ):
                newer = ("payment failure", locked.payment_failed_event_at)
            if outcome in ("failed", "pending") and locked.paid_event_at and locked.paid_event_at > created:
                newer = ("payment", locked.paid_event_at)
        if newer is not None:
            subscription_note(
                locked,
                f"{what}: ignored, Stripe sent it at {created:%Y-%m-%d %H:%M:%S}, before the newer {newer[0]} "
                f"({newer[1]:%Y-%m-%d %H:%M:%S}) already applied",
                stripe_event_id=stripe_event_id,
            )
            locked = None
        elif created is not None:
            field = {"paid": "paid_event_at", "failed": "payment_failed_event_at"}.get(outcome)
            if field and (getattr(locked, field) is None or getattr(locked, field) < created):
                setattr(locked, field, created)
                Subscription.objects.filter(pk=locked.pk).update(**{field: created})
        yield locked


def _checkout_subscription(*, session: dict, stripe_event_id: str) -> Subscription | None:
    """The subscription a Checkout Session event is about. The session must be the one we opened, and its
    client_reference_id and metadata must name that subscription's store and customer; anything else is
    refused (audited) and None returned."""
    subscription = Subscription.objects.filter(checkout_session_id=session.get("id")).first()
    if subscription is None:
        _refuse(stripe_event_id=stripe_event_id, reason="unknown checkout session", session=session.get("id"))
        return None
    metadata = session.get("metadata") or {}
    store = subscription.stores.order_by("pk").first()
    claimed = {session.get("client_reference_id"), metadata.get("store_id")}
    if claimed != {str(store.pk)} or metadata.get("customer_id") != str(subscription.customer_id):
        _refuse(
            stripe_event_id=stripe_event_id,
            reason="checkout session names a store or customer that is not its own",
            session=session.get("id"),
            client_reference_id=session.get("client_reference_id"),
            metadata=dict(metadata),
        )
        return None
    if subscription.status == SS.ABANDONED:
        _refuse(
            stripe_event_id=stripe_event_id,
            reason="payment for a checkout that was already abandoned; refund it or rebuild the store by hand",
            subscription=subscription.pk,
        )
        return None
    return subscription


def checkout_completed(*, session: dict, stripe_event_id: str, event_created=None) -> Subscription | None:
    """checkout.session.completed: the customer finished Checkout. Paid (or nothing to pay): the subscription
    goes active and its store is queued. A delayed method (SEPA, ACH) arrives with payment_status "unpaid":
    the subscription waits in PAYMENT_PENDING for checkout.session.async_payment_succeeded or _failed."""
    subscription = _checkout_subscription(session=session, stripe_event_id=stripe_event_id)
    if subscription is None:
        return None
    if session.get("payment_status") == "unpaid":
        with _payment_event_applied(
            subscription,
            outcome="pending",
            what="checkout completed, payment processing",
            stripe_event_id=stripe_event_id,
            created=event_created,
        ) as subscription:
            if subscription is None or subscription.status != SS.CHECKOUT:
                return subscription  # stale, or already handled
            return subscription_transition(
                subscription_id=subscription.pk,
                to=SS.PAYMENT_PENDING,
                stripe_event_id=stripe_event_id,
                note="checkout completed; the payment is still processing at the bank",
                stripe_customer_id=session.get("customer") or "",
                stripe_subscription_id=session.get("subscription"),
            )
    return _checkout_paid(
        subscription,
        session=session,
        stripe_event_id=stripe_event_id,
        event_created=event_created,
        note="checkout completed",
    )


def checkout_async_payment_succeeded(*, session: dict, stripe_event_id: str, event_created=None) -> Subscription | None:
    """checkout.session.async_payment_succeeded: a delayed payment cleared; the store is queued."""
    subscription = _checkout_subscription(session=session, stripe_event_id=stripe_event_id)
    if subscription is None:
        return None
    if session.get("payment_status") != "paid":
        _refuse(
            stripe_event_id=stripe_event_id,
            reason="payment succeeded event for a session that is not paid",
            session=session.get("id"),
            payment_status=session.get("payment_status"),
        )
        return subscription
    return _checkout_paid(
        subscription,
        session=session,
        stripe_event_id=stripe_event_id,
        event_created=event_created,
        note="delayed payment succeeded",
    )


def _checkout_paid(
    subscription: Subscription, *, session: dict, stripe_event_id: str, event_created, note: str
) -> Subscription | None:
    with _payment_event_applied(
        subscription, outcome="paid", what=note, stripe_event_id=stripe_event_id, created=event_created
    ) as locked:
        if locked is None or locked.status not in (SS.CHECKOUT, SS.PAYMENT_PENDING):
            return locked  # stale, or already handled (the same fact delivered under another event id)
        subscription = subscription_transition(
            subscription_id=subscription.pk,
            to=SS.ACTIVE,
            stripe_event_id=stripe_event_id,
            note=note,
            stripe_customer_id=session.get("customer") or locked.stripe_customer_id,
            stripe_subscription_id=session.get("subscription") or locked.stripe_subscription_id,
        )
        store_order_paid(store_id=subscription.stores.order_by("pk").first().pk)
    return subscription


def checkout_async_payment_failed(*, session: dict, stripe_event_id: str, event_created=None) -> Subscription | None:
    """checkout.session.async_payment_failed: a delayed payment bounced. Nothing is built; the Stripe
    subscription it opened is canceled, so it never bills, and the customer is told and can pay another way
    (the store keeps its domain for BILLING_CHECKOUT_ABANDON_HOURS from now)."""
    subscription = _checkout_subscription(session=session, stripe_event_id=stripe_event_id)
    if subscription is None:
        return None
    with _payment_event_applied(
        subscription,
        outcome="failed",
        what="delayed payment failed",
        stripe_event_id=stripe_event_id,
        created=event_created,
    ) as locked:
        if locked is None or locked.status not in (SS.CHECKOUT, SS.PAYMENT_PENDING):
            return locked
        stripe_subscription_id = session.get("subscription") or locked.stripe_subscription_id
        if stripe_subscription_id:
            # Inside the webhook's transaction: if Stripe cannot be reached, nothing here is kept and Stripe
            # delivers the event again.
            stripe_gateway.subscription_cancel(subscription_id=stripe_subscription_id)
        # The session is spent (Stripe keeps it "complete"); forgetting it lets a new one be opened and lets
        # checkouts_abandoned_cleanup release the store if the customer never pays.
        fields = {"stripe_subscription_id": None, "checkout_session_id": None, "checkout_started_at": None}
        note = "delayed payment failed; the Stripe subscription was canceled and the customer asked to pay again"
        if locked.status == SS.PAYMENT_PENDING:
            subscription = subscription_transition(
                subscription_id=locked.pk, to=SS.CHECKOUT, stripe_event_id=stripe_event_id, note=note, **fields
            )
        else:  # the failure overtook checkout.session.completed
            Subscription.objects.filter(pk=locked.pk).update(**fields)
            subscription_note(locked, note, stripe_event_id=stripe_event_id)
            subscription = Subscription.objects.select_related("plan", "customer").get(pk=locked.pk)
        store = subscription.stores.order_by("pk").first()
        context = {
            "plan": subscription.plan,
            "store": store,
            "release_at": timezone.now() + timedelta(hours=settings.BILLING_CHECKOUT_ABANDON_HOURS),
        }
        email = subscription.customer.email
        transaction.on_commit(lambda: email_send(template="checkout_payment_failed", to=[email], context=context))
    return subscription


def _subscription_for_stripe_id(stripe_subscription_id: str | None) -> Subscription | None:
    if not stripe_subscription_id:
        return None
    return (
        Subscription.objects.select_related("plan", "customer")
        .filter(stripe_subscription_id=stripe_subscription_id)
        .first()
    )


def invoice_subscription_id(invoice: dict) -> str | None:
    """The subscription an invoice bills: `parent.subscription_details` since API 2025-03, `subscription` before."""
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    found = details.get("subscription") or invoice.get("subscription")
    return found.get("id") if isinstance(found, dict) else found


def invoice_paid(*, invoice: dict, stripe_event_id: str, event_created=None) -> Subscription | None:
    """invoice.paid: recorded; a past-due subscription is current again, and stores suspended for it resume
    (not those held beyond the plan's store limit). Ignored when a newer payment failure was applied."""
    subscription = _subscription_for_stripe_id(invoice_subscription_id(invoice))
    if subscription is None:
        return None  # the first invoice is paid before checkout.session.completed links the subscription
    amount = money_text(invoice.get("amount_paid"))
    note = f"invoice {invoice.get('id')} paid ({amount})"
    with _payment_event_applied(
        subscription, outcome="paid", what=note, stripe_event_id=stripe_event_id, created=event_created
    ) as subscription:
        if subscription is None:
            return None
        if subscription.status not in (SS.PAST_DUE, SS.SUSPENDED):
            subscription_note(subscription, note, stripe_event_id=stripe_event_id)
            return subscription
        was_suspended = subscription.status == SS.SUSPENDED
        subscription = subscription_transition(
            subscription_id=subscription.pk,
            to=SS.ACTIVE,
            stripe_event_id=stripe_event_id,
            note=note,
            past_due_since=None,
        )
        if was_suspended:
            suspended = subscription.stores.filter(status=Store.Status.SUSPENDED, billing_hold__isnull=True)
            for store in suspended.order_by("pk"):
                if store_suspended_by_billing(store):  # a store staff suspended stays suspended
                    subscription_store_job_enqueue(subscription, store_id=store.pk, kind=Job.Kind.RESUME, note="resume")
    return subscription


def _mirrored_invoice_status(invoice_id: str | None) -> str:
    """The invoice's status in dj-stripe's mirror, which dj-stripe re-reads from Stripe for each event."""
    mirrored = Invoice.objects.filter(id=invoice_id).first() if invoice_id else None
    return (mirrored.stripe_data.get("status") or "") if mirrored else ""


def invoice_payment_failed(*, invoice: dict, stripe_event_id: str, event_created=None, now=None) -> Subscription | None:
    """invoice.payment_failed: the subscription is past due from the first failure, and the customer is told.

    Ignored when a newer payment was applied, or when Stripe has the invoice paid by now (the failure was
    followed by a successful retry whose event is still on its way)."""
    now = now or timezone.now()
    subscription = _subscription_for_stripe_id(invoice_subscription_id(invoice))
    if subscription is None or subscription.status not in (SS.ACTIVE, SS.PAST_DUE, SS.SUSPENDED):
        return None
    note = f"invoice {invoice.get('id')} payment failed (attempt {invoice.get('attempt_count') or 1})"
    if _mirrored_invoice_status(invoice.get("id")) == "paid":
        subscription_note(subscription, f"{note}: ignored, Stripe has it paid by now", stripe_event_id=stripe_event_id)
        return subscription
    with _payment_event_applied(
        subscription, outcome="failed", what=note, stripe_event_id=stripe_event_id, created=event_created
    ) as subscription:
        if subscription is None:
            return None
        if subscription.status == SS.ACTIVE:
            subscription = subscription_transition(
                subscription_id=subscription.pk,
                to=SS.PAST_DUE,
                stripe_event_id=stripe_event_id,
                note=note,
                past_due_since=now,
            )
        else:
            subscription_note(subscription, note, stripe_event_id=stripe_event_id)
        context = {
            "plan": subscription.plan,
            "amount": money_text(invoice.get("amount_due")),
            "invoice_url": invoice.get("hosted_invoice_url") or "",
            "suspend_on": subscription.past_due_since + grace_period(),
        }
        transaction.on_commit(
            lambda: email_send(template="payment_failed", to=[subscription.customer.email], context=context)
        )
    return subscription


def _plan_for_price(price: dict | str | None) -> Plan | None:
    price_id = price.get("id") if isinstance(price, dict) else price
    product_id = price.get("product") if isinstance(price, dict) else None
    plan = Plan.objects.filter(stripe_price_id=price_id).first() if price_id else None
    if plan is None and product_id:
        # An older price of the same product (kept by subscriptions that were not migrated).
        plan = Plan.objects.filter(stripe_product_id=product_id).first()
    return plan


def _stripe_subscription_current(stripe_subscription: dict) -> dict:
    """The subscription as dj-stripe's mirror has it. dj-stripe re-reads it from Stripe for each event before
    our handler runs, so a late, older event is judged by the subscription's state now, not by its payload."""
    mirrored = MirroredSubscription.objects.filter(id=stripe_subscription.get("id")).first()
    return mirrored.stripe_data if mirrored is not None and mirrored.stripe_data else stripe_subscription


def _first_item_price(stripe_subscription: dict | None):
    items = ((stripe_subscription or {}).get("items") or {}).get("data") or []
    return items[0].get("price") if items and isinstance(items[0], dict) else None


def subscription_updated(
    *, stripe_subscription: dict, stripe_event_id: str, previous: dict | None = None
) -> Subscription | None:
    """customer.subscription.updated: a plan change moves the stores to the new plan, applies its limits and
    fits the stores into its store limit (stores_fit_plan). A change to another platform's plan is refused
    and undone in Stripe (_plan_change_refuse); a price that is none of our plans is refused for staff."""
    subscription = _subscription_for_stripe_id(stripe_subscription.get("id"))
    if subscription is None or subscription.status not in (SS.ACTIVE, SS.PAST_DUE, SS.SUSPENDED):
        return subscription
    price = _first_item_price(_stripe_subscription_current(stripe_subscription))
    new_plan = _plan_for_price(price)
    if new_plan is None:
        _refuse(
            stripe_event_id=stripe_event_id,
            reason="the subscription's price is none of our plans; check it in Stripe",
            subscription=subscription.pk,
            price=price.get("id") if isinstance(price, dict) else price,
        )
        return subscription
    if new_plan.pk == subscription.plan_id:
        return subscription
    if new_plan.platform != subscription.plan.platform:
        return _plan_change_refuse(subscription, new_plan=new_plan, previous=previous, stripe_event_id=stripe_event_id)
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update().select_related("plan", "customer").get(pk=subscription.pk)
        )
        old_plan = subscription.plan
        subscription.plan = new_plan
        subscription.save(update_fields=["plan", "updated_at"])
        subscription_note(
            subscription, f"plan changed from {old_plan.slug} to {new_plan.slug}", stripe_event_id=stripe_event_id
        )
        for store in subscription_live_stores(subscription):
            store_plan_change(store_id=store.pk, plan=new_plan)
        changed = stores_fit_plan(subscription, stripe_event_id=stripe_event_id)
        for store in subscription.stores.filter(status__in=[Store.Status.ACTIVE, Store.Status.SUSPENDED]):
            if store.pk not in changed:
                subscription_store_job_enqueue(
                    subscription, store_id=store.pk, kind=Job.Kind.UPDATE_LIMITS, note="new limits"
                )
    return subscription


def _plan_change_refuse(
    subscription: Subscription, *, new_plan: Plan, previous: dict | None, stripe_event_id: str
) -> Subscription:
    """A plan the platform cannot give this subscription (another platform: its stores cannot move between
    WooCommerce and Magento). Stripe already bills the new price, so the subscription is switched back to
    the previous one, with prorations that credit the refused change; staff get an audit row and the
    customer an e-mail. If Stripe cannot be reached the webhook fails and Stripe delivers it again."""
    previous_plan = _plan_for_price(_first_item_price(previous))
    if previous_plan is not None and previous_plan.pk == subscription.plan_id:
        price = _first_item_price(previous)
        revert_to = price.get("id") if isinstance(price, dict) else price
    else:
        revert_to = subscription.plan.stripe_price_id
    reason = "a subscription cannot move between platforms"
    if revert_to:
        stripe_gateway.subscription_price_set(
            subscription_id=subscription.stripe_subscription_id, price_id=revert_to, prorate=True
        )
        outcome = f"switched back to {revert_to} in Stripe"
    else:
        outcome = "NOT switched back: the plan has no Stripe price; fix the subscription in Stripe by hand"
    _refuse(
        stripe_event_id=stripe_event_id,
        reason=f"{reason}; {outcome}",
        subscription=subscription.pk,
        plan=new_plan.slug,
        reverted_to=revert_to or "",
    )
    subscription_note(
        subscription, f"plan change to {new_plan.slug} refused: {reason}; {outcome}", stripe_event_id=stripe_event_id
    )
    context = {"plan": subscription.plan, "refused_plan": new_plan, "reverted": bool(revert_to)}
    email = subscription.customer.email
    transaction.on_commit(lambda: email_send(template="plan_change_refused", to=[email], context=context))
    return subscription


def subscription_deleted(*, stripe_subscription: dict, stripe_event_id: str, now=None) -> Subscription | None:
    """customer.subscription.deleted: each store gets a final backup and is then stopped; stores are torn
    down after the retention period (BILLING_CANCELED_RETENTION_DAYS)."""
    now = now or timezone.now()
    subscription = _subscription_for_stripe_id(stripe_subscription.get("id"))
    if subscription is None or subscription.status in (SS.CANCELED, SS.ENDED):
        return subscription
    if subscription.status == SS.PAYMENT_PENDING:
        # Ended before its first payment cleared: nothing was built, and the signup waits for a payment again
        # (checkouts_abandoned_cleanup releases it if none comes).
        return subscription_transition(
            subscription_id=subscription.pk,
            to=SS.CHECKOUT,
            stripe_event_id=stripe_event_id,
            note="subscription deleted in Stripe before its first payment cleared",
            stripe_subscription_id=None,
            checkout_session_id=None,
            checkout_started_at=None,
        )
    teardown_at = now + timedelta(days=settings.BILLING_CANCELED_RETENTION_DAYS)
    with transaction.atomic():
        subscription = subscription_transition(
            subscription_id=subscription.pk,
            to=SS.CANCELED,
            stripe_event_id=stripe_event_id,
            note="subscription deleted in Stripe",
            canceled_at=now,
            teardown_at=teardown_at,
        )
        for store in subscription_live_stores(subscription):
            # The store is stopped when its final backup succeeded (backups.services); one that was never
            # built, or is being backed up right now, is stopped at once and backed up before teardown.
            if final_backup_request(store_id=store.pk) is None and store.status == Store.Status.ACTIVE:
                subscription_store_job_enqueue(subscription, store_id=store.pk, kind=Job.Kind.SUSPEND, note="stop")
        context = {"plan": subscription.plan, "teardown_at": teardown_at}
        email = subscription.customer.email
        transaction.on_commit(lambda: email_send(template="subscription_canceled", to=[email], context=context))
    return subscription
