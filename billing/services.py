import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.services import audit_record, customer_create
from backups.services.backup import final_backup_request, store_has_final_backup
from billing import stripe_gateway
from billing.models import Plan, Platform, StoreHold, Subscription, SubscriptionEvent, money_text
from provisioning.models import ProvisioningJob as Job
from provisioning.orders import store_order_paid
from shophosting.core.emails import email_send
from shophosting.core.transitions import InvalidTransition, transition
from stores.models import Store
from stores.services import store_create, store_plan_change, store_transition

logger = logging.getLogger(__name__)

# (name, WooCommerce price, Magento price, store limit, WooCommerce (GB, CPU), Magento (GB, CPU), flags on)
SEED_CATALOGUE = [
    ("Commerce Core", 99, 125, 1, (1, "1.0"), (2, "1.0"), {"daily_backups", "email_support", "redis_cache"}),
    (
        "Commerce Pro",
        149,
        189,
        1,
        (2, "2.0"),
        (4, "2.0"),
        {"daily_backups", "email_support", "redis_cache", "premium_plugins", "staging"},
    ),
    (
        "Commerce Scale",
        249,
        319,
        1,
        (4, "4.0"),
        (8, "4.0"),
        {
            "daily_backups",
            "email_support",
            "redis_cache",
            "premium_plugins",
            "staging",
            "support_24_7",
            "sla_uptime",
            "advanced_security",
        },
    ),
    (
        "Multi-Store",
        399,
        499,
        5,
        (2, "2.0"),
        (4, "2.0"),
        {"daily_backups", "email_support", "redis_cache", "premium_plugins", "staging", "centralized_management"},
    ),
    (
        "Agency",
        749,
        949,
        10,
        (4, "4.0"),
        (8, "4.0"),
        {
            "daily_backups",
            "email_support",
            "redis_cache",
            "premium_plugins",
            "staging",
            "centralized_management",
            "support_24_7",
            "white_label",
            "advanced_security",
        },
    ),
    ("Agency Plus", 1299, 1649, 20, (8, "8.0"), (16, "8.0"), set(Plan.FEATURE_FLAGS)),
]


@transaction.atomic
def plan_catalogue_seed() -> list[tuple[Plan, bool]]:
    """Create the seed catalogue; idempotent by slug, and it never overwrites staff edits."""
    results = []
    for order, (name, woo_price, magento_price, stores, woo_limits, magento_limits, flags) in enumerate(SEED_CATALOGUE):
        for platform, price, (memory_gb, cpu) in (
            (Platform.WOOCOMMERCE, woo_price, woo_limits),
            (Platform.MAGENTO, magento_price, magento_limits),
        ):
            slug = f"{platform}-{name.lower().replace(' ', '-')}"
            defaults = {
                "platform": platform,
                "name": name,
                "tier": Plan.Tier.MULTI if stores > 1 else Plan.Tier.SINGLE,
                "price_monthly": Decimal(price),
                "store_limit": stores,
                "memory_mb": memory_gb * 1024,
                "cpu_limit": Decimal(cpu),
                "display_order": order,
                **{flag: flag in flags for flag in Plan.FEATURE_FLAGS},
            }
            results.append(Plan.objects.get_or_create(slug=slug, defaults=defaults))
    return results


# ---------------------------------------------------------------------------------------------------------
# Subscriptions: signup, checkout, webhooks, dunning. Subscription.status changes only in
# subscription_transition, under the row lock, with a SubscriptionEvent.
# ---------------------------------------------------------------------------------------------------------

SS = Subscription.Status
# to-status -> the statuses it may be reached from.
SUBSCRIPTION_ALLOWED_FROM: dict[str, set[str]] = {
    SS.CHECKOUT: {SS.PAYMENT_PENDING},  # a delayed payment (SEPA, ACH) failed: the customer can pay another way
    SS.PAYMENT_PENDING: {SS.CHECKOUT},
    SS.ACTIVE: {SS.CHECKOUT, SS.PAYMENT_PENDING, SS.PAST_DUE, SS.SUSPENDED},
    SS.PAST_DUE: {SS.ACTIVE},
    SS.SUSPENDED: {SS.PAST_DUE},
    SS.CANCELED: {SS.ACTIVE, SS.PAST_DUE, SS.SUSPENDED},
    SS.ENDED: {SS.CANCELED},
    SS.ABANDONED: {SS.CHECKOUT},
}
# A second "pay now" within this many seconds of the last (a double click, a reload) gets the same session.
CHECKOUT_REUSE_SECONDS = 60
# Stores that still count against the plan's store limit.
LIVE_STORE_STATUSES = [s for s in Store.Status.values if s not in (Store.Status.DELETING, Store.Status.DELETED)]


class BillingRefused(Exception):
    """A request that billing will not carry out; the message says why, in words for the person asking."""


# What a Stripe-backed request can fail with; each has a message fit to show the person asking.
BILLING_FAILURES = (BillingRefused, stripe_gateway.StripeFailure, stripe_gateway.StripeNotConfigured)


def subscription_transition(
    *, subscription_id: int, to: str, stripe_event_id: str = "", actor: User | None = None, note: str = "", **fields
) -> Subscription:
    return transition(
        Subscription,
        subscription_id,
        to,
        allowed_from=SUBSCRIPTION_ALLOWED_FROM,
        event_model=SubscriptionEvent,
        event_link="subscription",
        actor=actor,
        note=note,
        event_fields={"stripe_event_id": stripe_event_id},
        **fields,
    )


def _subscription_note(subscription: Subscription, note: str, *, stripe_event_id: str = "") -> None:
    SubscriptionEvent.objects.create(
        subscription=subscription,
        old_status=subscription.status,
        new_status=subscription.status,
        stripe_event_id=stripe_event_id,
        note=note,
    )


def _live_stores(subscription: Subscription):
    return subscription.stores.filter(status__in=LIVE_STORE_STATUSES).order_by("pk")


def _jobs_enqueue_one(subscription: Subscription, *, store_id: int, kind: str, note: str) -> bool:
    """A job for one store; a store that is busy keeps its state, and that is noted for staff."""
    from provisioning.exceptions import JobConflict
    from provisioning.services import job_enqueue

    try:
        job_enqueue(store_id=store_id, kind=kind)
    except (JobConflict, InvalidTransition) as exc:
        _subscription_note(subscription, f"{note}: store {store_id} not changed: {exc}")
        return False
    return True


def _jobs_enqueue(subscription: Subscription, *, kind: str, from_status: str, note: str) -> list[int]:
    """One job per store in `from_status`."""
    stores = subscription.stores.filter(status=from_status).order_by("pk")
    return [s.pk for s in stores if _jobs_enqueue_one(subscription, store_id=s.pk, kind=kind, note=note)]


@transaction.atomic
def signup_create(
    *, plan: Plan, domain: str, customer: User | None = None, email: str = "", password: str = "", company: str = ""
) -> Subscription:
    """A subscription awaiting checkout and its first store awaiting payment, for a new customer (created here)
    or a signed-in one; all or nothing."""
    if not plan.active:
        raise BillingRefused("This plan is no longer offered.")
    if customer is None:
        customer = customer_create(email=email, password=password, company=company)
    subscription = Subscription.objects.create(customer=customer, plan=plan)
    SubscriptionEvent.objects.create(subscription=subscription, new_status=subscription.status, note="signup")
    store_create(customer=customer, plan=plan, domain=domain, subscription=subscription, actor=customer)
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


def _refuse(*, stripe_event_id: str, reason: str, **detail) -> None:
    # A signed event that does not match what we sent to Stripe: record it for staff and change nothing.
    logger.warning("stripe event %s refused: %s %s", stripe_event_id, reason, detail)
    audit_record(event="billing_event_refused", stripe_event_id=stripe_event_id, reason=reason, **detail)


def _payment_event_fresh(
    *, subscription_id: int, created, outcome: str, stripe_event_id: str, what: str
) -> Subscription | None:
    """Lock the subscription and decide whether a payment event still applies; None when it does not.

    Stripe does not deliver events in order. A "paid" event older than the newest applied payment failure
    (or a failure older than the newest applied payment) is stale: it is recorded on the subscription and
    changes nothing. `outcome` is "paid", "failed" or "pending" (a checkout whose payment is processing,
    stale against either). Call inside a transaction; the lock is held until it ends."""
    subscription = Subscription.objects.select_for_update().select_related("plan", "customer").get(pk=subscription_id)
    if created is None:
        return subscription
    newer = None
    if (
        outcome in ("paid", "pending")
        and subscription.payment_failed_event_at
        and subscription.payment_failed_event_at > created
    ):
        newer = ("payment failure", subscription.payment_failed_event_at)
    if outcome in ("failed", "pending") and subscription.paid_event_at and subscription.paid_event_at > created:
        newer = ("payment", subscription.paid_event_at)
    if newer is not None:
        _subscription_note(
            subscription,
            f"{what}: ignored, Stripe sent it at {created:%Y-%m-%d %H:%M:%S}, before the newer {newer[0]} "
            f"({newer[1]:%Y-%m-%d %H:%M:%S}) already applied",
            stripe_event_id=stripe_event_id,
        )
        return None
    field = {"paid": "paid_event_at", "failed": "payment_failed_event_at"}.get(outcome)
    if field and (getattr(subscription, field) is None or getattr(subscription, field) < created):
        setattr(subscription, field, created)
        Subscription.objects.filter(pk=subscription.pk).update(**{field: created})
    return subscription


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
        with transaction.atomic():
            subscription = _payment_event_fresh(
                subscription_id=subscription.pk,
                created=event_created,
                outcome="pending",
                stripe_event_id=stripe_event_id,
                what="checkout completed, payment processing",
            )
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
    with transaction.atomic():
        locked = _payment_event_fresh(
            subscription_id=subscription.pk,
            created=event_created,
            outcome="paid",
            stripe_event_id=stripe_event_id,
            what=note,
        )
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
    with transaction.atomic():
        locked = _payment_event_fresh(
            subscription_id=subscription.pk,
            created=event_created,
            outcome="failed",
            stripe_event_id=stripe_event_id,
            what="delayed payment failed",
        )
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
            _subscription_note(locked, note, stripe_event_id=stripe_event_id)
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
    amount = _money(invoice.get("amount_paid"))
    note = f"invoice {invoice.get('id')} paid ({amount})"
    with transaction.atomic():
        subscription = _payment_event_fresh(
            subscription_id=subscription.pk,
            created=event_created,
            outcome="paid",
            stripe_event_id=stripe_event_id,
            what=note,
        )
        if subscription is None:
            return None
        if subscription.status not in (SS.PAST_DUE, SS.SUSPENDED):
            _subscription_note(subscription, note, stripe_event_id=stripe_event_id)
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
                if _suspended_by_billing(store):  # a store staff suspended stays suspended
                    _jobs_enqueue_one(subscription, store_id=store.pk, kind=Job.Kind.RESUME, note="resume")
    return subscription


def _mirrored_invoice_status(invoice_id: str | None) -> str:
    """The invoice's status in dj-stripe's mirror, which dj-stripe re-reads from Stripe for each event."""
    from djstripe.models import Invoice

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
        _subscription_note(subscription, f"{note}: ignored, Stripe has it paid by now", stripe_event_id=stripe_event_id)
        return subscription
    with transaction.atomic():
        subscription = _payment_event_fresh(
            subscription_id=subscription.pk,
            created=event_created,
            outcome="failed",
            stripe_event_id=stripe_event_id,
            what=note,
        )
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
            _subscription_note(subscription, note, stripe_event_id=stripe_event_id)
        context = {
            "plan": subscription.plan,
            "amount": _money(invoice.get("amount_due")),
            "invoice_url": invoice.get("hosted_invoice_url") or "",
            "suspend_on": subscription.past_due_since + _grace_period(),
        }
        transaction.on_commit(
            lambda: email_send(template="payment_failed", to=[subscription.customer.email], context=context)
        )
    return subscription


def _grace_period() -> timedelta:
    return timedelta(days=settings.BILLING_GRACE_PERIOD_DAYS)


def dunning_enforce(*, now=None) -> list[int]:
    """Suspend the stores of subscriptions past due for longer than the grace period. Run periodically."""
    now = now or timezone.now()
    suspended = []
    overdue = Subscription.objects.filter(status=SS.PAST_DUE, past_due_since__lte=now - _grace_period())
    for subscription_id in overdue.values_list("pk", flat=True):
        with transaction.atomic():
            try:
                subscription = subscription_transition(
                    subscription_id=subscription_id,
                    to=SS.SUSPENDED,
                    note=f"unpaid for more than {settings.BILLING_GRACE_PERIOD_DAYS} days",
                )
            except InvalidTransition:
                continue  # paid in the meantime
            stores = list(_live_stores(subscription).filter(status=Store.Status.ACTIVE))
            _jobs_enqueue(subscription, kind=Job.Kind.SUSPEND, from_status=Store.Status.ACTIVE, note="suspend")
            context = {"plan": subscription.plan, "stores": stores, "grace_days": settings.BILLING_GRACE_PERIOD_DAYS}
            email = subscription.customer.email
            transaction.on_commit(lambda c=context, e=email: email_send(template="stores_suspended", to=[e], context=c))
        suspended.append(subscription_id)
    return suspended


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
    from djstripe.models import Subscription as MirroredSubscription

    mirrored = MirroredSubscription.objects.filter(id=stripe_subscription.get("id")).first()
    return mirrored.stripe_data if mirrored is not None and mirrored.stripe_data else stripe_subscription


def _first_item_price(stripe_subscription: dict | None):
    items = ((stripe_subscription or {}).get("items") or {}).get("data") or []
    return items[0].get("price") if items and isinstance(items[0], dict) else None


def subscription_updated(
    *, stripe_subscription: dict, stripe_event_id: str, previous: dict | None = None
) -> Subscription | None:
    """customer.subscription.updated: a plan change moves the stores to the new plan, applies its limits and
    fits the stores into its store limit (_stores_fit_plan). A change to another platform's plan is refused
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
        _subscription_note(
            subscription, f"plan changed from {old_plan.slug} to {new_plan.slug}", stripe_event_id=stripe_event_id
        )
        for store in _live_stores(subscription):
            store_plan_change(store_id=store.pk, plan=new_plan)
        changed = _stores_fit_plan(subscription, stripe_event_id=stripe_event_id)
        for store in subscription.stores.filter(status__in=[Store.Status.ACTIVE, Store.Status.SUSPENDED]):
            if store.pk not in changed:
                _jobs_enqueue_one(subscription, store_id=store.pk, kind=Job.Kind.UPDATE_LIMITS, note="new limits")
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
    _subscription_note(
        subscription, f"plan change to {new_plan.slug} refused: {reason}; {outcome}", stripe_event_id=stripe_event_id
    )
    context = {"plan": subscription.plan, "refused_plan": new_plan, "reverted": bool(revert_to)}
    email = subscription.customer.email
    transaction.on_commit(lambda: email_send(template="plan_change_refused", to=[email], context=context))
    return subscription


def _stores_fit_plan(subscription: Subscription, *, stripe_event_id: str = "") -> set[int]:
    """Fit the subscription's stores into its plan's store limit. Returns the ids of the stores given a job.

    Beyond the limit, the newest stores are held: suspended (a suspend job), never deleted, each audited,
    and the customer is e-mailed the list. A held store keeps its data and backups and is not resumed by a
    paid invoice. When a later plan covers more stores, the oldest held stores are released and resumed."""
    live = list(_live_stores(subscription))
    held = {hold.store_id: hold for hold in StoreHold.objects.filter(store__in=live)}
    covered = [store for store in live if store.pk not in held]
    limit = subscription.plan.store_limit
    jobs, newly_held = set(), []
    for store in covered[limit:]:  # oldest first, so the newest are the ones left out
        StoreHold.objects.create(
            store=store, subscription=subscription, plan=subscription.plan, stripe_event_id=stripe_event_id
        )
        newly_held.append(store)
        note = (
            f"{store.domain} held: beyond the {subscription.plan.store_limit}-store limit of {subscription.plan.slug}"
        )
        _subscription_note(subscription, note, stripe_event_id=stripe_event_id)
        audit_record(
            event="store_held_for_plan_limit", subscription=subscription.pk, store=store.pk, plan=subscription.plan.slug
        )
        if store.status == Store.Status.ACTIVE and _jobs_enqueue_one(
            subscription, store_id=store.pk, kind=Job.Kind.SUSPEND, note="held for the plan's store limit"
        ):
            jobs.add(store.pk)
        # A store that is not running yet is suspended by stores_billing_enforce once it is.
    room = limit - len(covered)
    for store_id in sorted(held)[: max(room, 0)]:
        store = next(s for s in live if s.pk == store_id)
        held[store_id].delete()
        _subscription_note(
            subscription, f"{store.domain} released: the plan covers it again", stripe_event_id=stripe_event_id
        )
        audit_record(
            event="store_released_for_plan_limit",
            subscription=subscription.pk,
            store=store.pk,
            plan=subscription.plan.slug,
        )
        if (
            store.status == Store.Status.SUSPENDED
            and subscription.status in (SS.ACTIVE, SS.PAST_DUE)
            and _jobs_enqueue_one(subscription, store_id=store.pk, kind=Job.Kind.RESUME, note="released from hold")
        ):
            jobs.add(store.pk)
    if newly_held:
        context = {"plan": subscription.plan, "stores": newly_held, "kept": covered[:limit]}
        email = subscription.customer.email
        transaction.on_commit(lambda: email_send(template="stores_over_plan_limit", to=[email], context=context))
    return jobs


# Subscriptions whose stores must not run, and the one whose suspended stores may run again.
STOPS_STORES = (SS.SUSPENDED, SS.CANCELED)


def stores_billing_enforce() -> list[int]:
    """Every store in the state its billing asks for; returns the stores queued. Run every ten minutes.

    A billing job refused because its store was busy (a backup, a restore, a verification, another job) is
    only noted on the subscription when the event arrives; this queues it once the store is free. So a store
    busy at the moment of a suspension never escapes it, and one busy when its payment arrived does not stay
    stopped. Covers: running stores held beyond the plan's limit (or still being built when held), running
    stores of a suspended or canceled subscription, and stores that billing suspended whose subscription is
    paid again. A store that staff suspended (its last suspend job has an actor) is left as it is."""
    from stores.operations import store_operation_active

    must_stop = (
        Store.objects.filter(status=Store.Status.ACTIVE, subscription__isnull=False)
        .filter(Q(billing_hold__isnull=False) | Q(subscription__status__in=STOPS_STORES))
        .select_related("subscription")
        .order_by("pk")
    )
    may_run = (
        Store.objects.filter(status=Store.Status.SUSPENDED, subscription__status=SS.ACTIVE, billing_hold__isnull=True)
        .select_related("subscription")
        .order_by("pk")
    )
    queued = []
    for kind, stores in ((Job.Kind.SUSPEND, must_stop), (Job.Kind.RESUME, may_run)):
        for store in stores:
            if store_operation_active(store_id=store.pk):
                continue  # the next run, once the store is free
            if kind == Job.Kind.RESUME and not _suspended_by_billing(store):
                continue
            if _jobs_enqueue_one(store.subscription, store_id=store.pk, kind=kind, note="billing enforced"):
                queued.append(store.pk)
    return queued


def _suspended_by_billing(store: Store) -> bool:
    """Billing and the periodic jobs queue their jobs without an actor; staff suspend with their name."""
    last = store.jobs.filter(kind=Job.Kind.SUSPEND, status=Job.Status.SUCCEEDED).order_by("-pk").first()
    return last is not None and last.created_by_id is None


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
        for store in _live_stores(subscription):
            # The store is stopped when its final backup succeeded (backups.services); one that was never
            # built, or is being backed up right now, is stopped at once and backed up before teardown.
            if final_backup_request(store_id=store.pk) is None and store.status == Store.Status.ACTIVE:
                _jobs_enqueue_one(subscription, store_id=store.pk, kind=Job.Kind.SUSPEND, note="stop")
        context = {"plan": subscription.plan, "teardown_at": teardown_at}
        email = subscription.customer.email
        transaction.on_commit(lambda: email_send(template="subscription_canceled", to=[email], context=context))
    return subscription


def subscriptions_teardown_due(*, now=None) -> list[int]:
    """Tear down the stores of canceled subscriptions whose retention period is over. Run periodically."""
    from provisioning.exceptions import JobConflict
    from provisioning.services import job_enqueue

    now = now or timezone.now()
    ended = []
    for subscription in Subscription.objects.filter(status=SS.CANCELED, teardown_at__lte=now):
        with transaction.atomic():
            pending = False
            for store in subscription.stores.exclude(status__in=[Store.Status.DELETED, Store.Status.DELETING]):
                if not store_has_final_backup(store):
                    # Never delete a store whose last data is not safe: back it up first, tear down next run.
                    final_backup_request(store_id=store.pk)
                    pending = True
                    continue
                try:
                    job_enqueue(store_id=store.pk, kind=Job.Kind.TEARDOWN)
                except JobConflict:
                    pending = True  # a job is still running; the next run tears this store down
            if not pending:
                subscription_transition(subscription_id=subscription.pk, to=SS.ENDED, note="retention period over")
                ended.append(subscription.pk)
    return ended


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


def subscription_store_add(*, subscription_id: int, domain: str, site_title: str = "", actor: User) -> Store:
    """Another store on a multi-store plan, up to the plan's store limit. It is paid for, so it is queued at once."""
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().select_related("plan").get(pk=subscription_id)
        if subscription.status != SS.ACTIVE:
            raise BillingRefused("Stores can be added only while the subscription is active and paid up.")
        used = _live_stores(subscription).count()
        if used >= subscription.plan.store_limit:
            raise BillingRefused(
                f"Your {subscription.plan.name} plan includes {subscription.plan.store_limit} "
                f"store{'s' if subscription.plan.store_limit != 1 else ''}, and all are in use. "
                "Upgrade the plan to add more."
            )
        store = store_create(
            customer=subscription.customer,
            plan=subscription.plan,
            domain=domain,
            site_title=site_title,
            subscription=subscription,
            actor=actor,
        )
        store_order_paid(store_id=store.pk, actor=actor)
    return store


def billing_portal_url(*, customer: User, return_url: str) -> str:
    stripe_customer_id = (
        Subscription.objects.filter(customer=customer)
        .exclude(stripe_customer_id="")
        .values_list("stripe_customer_id", flat=True)
        .first()
    )
    if not stripe_customer_id:
        raise BillingRefused("There is no paid subscription on this account yet.")
    return stripe_gateway.billing_portal_url(customer_id=stripe_customer_id, return_url=return_url)


def _money(cents) -> str:
    return money_text(cents or 0)


# ---------------------------------------------------------------------------------------------------------
# Pricing sync: the local Plan is the source; Stripe prices are immutable, so an amount change is a new price.
# ---------------------------------------------------------------------------------------------------------


def _plan_stripe_fields(plan: Plan) -> dict:
    return {
        "name": f"{plan.get_platform_display()} {plan.name}",
        "description": plan.description,
        "amount_cents": int(plan.price_monthly * 100),
        "active": plan.active,
    }


def _plan_metadata(plan: Plan) -> dict[str, str]:
    return {"plan": plan.slug, "platform": plan.platform, "store_limit": str(plan.store_limit)}


def plan_price_create(*, plan_id: int, actor: User | None = None) -> Plan:
    """Create a Stripe price for the plan's amount, make it the product's default and archive the old one.

    The product is created first if it is missing. Subscriptions keep their old price until migrated."""
    plan = Plan.objects.select_related("stripe_product", "stripe_price").get(pk=plan_id)
    fields = _plan_stripe_fields(plan)
    metadata = _plan_metadata(plan)
    if plan.stripe_product is None:
        product = stripe_gateway.product_create(
            name=fields["name"], description=fields["description"], metadata=metadata
        )
    else:
        product = plan.stripe_product
    old_price_id = plan.stripe_price_id
    price = stripe_gateway.price_create(
        product_id=product.id, amount_cents=fields["amount_cents"], nickname=plan.name, metadata=metadata
    )
    product = stripe_gateway.product_update(
        product_id=product.id,
        name=fields["name"],
        description=fields["description"],
        metadata=metadata,
        default_price=price.id,
    )
    if old_price_id and old_price_id != price.id:
        stripe_gateway.price_update(price_id=old_price_id, active=False)
    if not plan.active:
        stripe_gateway.price_update(price_id=price.id, active=False)
    Plan.objects.filter(pk=plan.pk).update(stripe_product=product, stripe_price=price, stripe_synced=fields)
    audit_record(event="plan_price_created", actor=actor, plan=plan.slug, price=price.id, old_price=old_price_id)
    return Plan.objects.get(pk=plan.pk)


def plan_stripe_update(*, plan_id: int, actor: User | None = None) -> Plan:
    """Send what Stripe lets change in place: product name, description and metadata; price nickname and active.

    An amount change is refused: Stripe prices are immutable, so it needs a new price (plan_price_create)."""
    plan = Plan.objects.select_related("stripe_product", "stripe_price").get(pk=plan_id)
    if plan.stripe_product is None or plan.stripe_price is None:
        raise BillingRefused(f"{plan} is not in Stripe yet. Choose “Create new price” to create it.")
    fields = _plan_stripe_fields(plan)
    stripe_amount = plan.stripe_price.stripe_data.get("unit_amount")
    if stripe_amount != fields["amount_cents"]:
        raise BillingRefused(
            f"{plan}: the price changed from {_money(stripe_amount)} to {_money(fields['amount_cents'])}. "
            "Stripe prices cannot be edited once created, so an amount change needs a new price. "
            "Choose “Create new price”: new signups pay the new amount, and existing subscriptions keep theirs "
            "until you migrate them."
        )
    stripe_gateway.product_update(
        product_id=plan.stripe_product_id,
        name=fields["name"],
        description=fields["description"],
        metadata=_plan_metadata(plan),
    )
    stripe_gateway.price_update(price_id=plan.stripe_price_id, nickname=plan.name, active=plan.active)
    Plan.objects.filter(pk=plan.pk).update(stripe_synced=fields)
    audit_record(event="plan_stripe_updated", actor=actor, plan=plan.slug)
    return Plan.objects.get(pk=plan.pk)


def plan_subscriptions_migrate(*, plan_id: int, actor: User | None = None) -> list[str]:
    """Move the plan's paying subscriptions to its current price, from their next period on."""
    plan = Plan.objects.get(pk=plan_id)
    if plan.stripe_price_id is None:
        raise BillingRefused(f"{plan} has no Stripe price yet.")
    moved = []
    subscriptions = Subscription.objects.filter(
        plan=plan, status__in=[SS.ACTIVE, SS.PAST_DUE, SS.SUSPENDED], stripe_subscription_id__isnull=False
    )
    for stripe_subscription_id in subscriptions.values_list("stripe_subscription_id", flat=True):
        if stripe_gateway.subscription_price_set(subscription_id=stripe_subscription_id, price_id=plan.stripe_price_id):
            moved.append(stripe_subscription_id)
    audit_record(event="plan_subscriptions_migrated", actor=actor, plan=plan.slug, subscriptions=moved)
    return moved


def store_delete(*, store_id: int, actor: User) -> Job:
    """Staff delete a store now: its containers and volumes are torn down, and when it is the last live store of
    its subscription the Stripe subscription is canceled first, so the customer is never charged for nothing.

    Whether the teardown can start is checked before Stripe is called, so a store that is busy is refused with
    billing untouched. Stripe is called outside any transaction: when it refuses, nothing changes here and the
    caller shows the error."""
    from provisioning.services import job_enqueue, job_preflight

    store = Store.objects.select_related("subscription").get(pk=store_id)
    job_preflight(store=store, kind=Job.Kind.TEARDOWN)  # before Stripe; job_enqueue checks again under the lock
    subscription = store.subscription
    last_store = subscription is not None and not _live_stores(subscription).exclude(pk=store.pk).exists()
    if last_store and subscription.status in (SS.ACTIVE, SS.PAST_DUE, SS.SUSPENDED):
        if subscription.stripe_subscription_id:
            stripe_gateway.subscription_cancel(subscription_id=subscription.stripe_subscription_id)
        now = timezone.now()
        try:
            subscription_transition(
                subscription_id=subscription.pk,
                to=SS.CANCELED,
                actor=actor,
                note=f"canceled by staff with the deletion of {store.domain}",
                canceled_at=now,
                teardown_at=now,
            )
        except InvalidTransition:
            # Stripe's customer.subscription.deleted webhook got here first: the outcome is the same.
            if Subscription.objects.get(pk=subscription.pk).status != SS.CANCELED:
                raise
    elif last_store and subscription.status == SS.PAYMENT_PENDING:
        # The bank debit cannot be stopped; deleting now could charge the customer for a store that is gone.
        raise BillingRefused(
            f"The customer's payment for {store.domain} is still processing at the bank. "
            "Delete the store once it has cleared (then it is canceled in Stripe) or failed."
        )
    elif last_store and subscription.status == SS.CHECKOUT:
        if subscription.checkout_session_id:
            if stripe_gateway.checkout_session_expire(session_id=subscription.checkout_session_id) == "complete":
                raise BillingRefused(f"The customer has just paid for {store.domain}; it is being set up. Reload.")
        subscription_transition(
            subscription_id=subscription.pk, to=SS.ABANDONED, actor=actor, note=f"{store.domain} deleted by staff"
        )
    return job_enqueue(store_id=store.pk, kind=Job.Kind.TEARDOWN, actor=actor)


@dataclass
class StaffOrder:
    subscription: Subscription
    store: Store
    customer_created: bool
    checkout_url: str | None  # None when payment was skipped or Stripe could not open a checkout
    payment_note: str


def staff_store_create(
    *,
    email: str,
    plan: Plan,
    domain: str,
    actor: User,
    skip_payment: bool,
    reason: str = "",
    company: str = "",
    first_name: str = "",
    last_name: str = "",
) -> StaffOrder:
    """Staff open a store for a customer (new or existing). With `skip_payment` (a trial, a migration, a
    partner) the subscription is active without Stripe and provisioning starts at once; the reason is kept on
    the subscription's event. Otherwise the customer is e-mailed a Checkout link to pay, as after a signup.
    A new customer gets a link to set their own password; staff never learn it."""
    if skip_payment and not reason.strip():
        raise BillingRefused("Say why payment is skipped (for example: 14-day trial agreed by sales).")
    with transaction.atomic():
        customer = User.objects.filter(email__iexact=email).first()
        if customer is not None and customer.is_staff:
            raise BillingRefused("That address belongs to a staff account; use the customer's own address.")
        customer_created = customer is None
        if customer_created:
            customer = customer_create(
                email=email, password=None, company=company, first_name=first_name, last_name=last_name
            )
        subscription = signup_create(plan=plan, domain=domain, customer=customer)
        store = subscription.stores.get()
        if skip_payment:
            subscription = subscription_transition(
                subscription_id=subscription.pk, to=SS.ACTIVE, actor=actor, note=f"payment skipped by staff: {reason}"
            )
            store_order_paid(store_id=store.pk, actor=actor)
    checkout_url, payment_note = None, "payment skipped: " + reason if skip_payment else ""
    if not skip_payment:
        site = settings.SITE_URL.rstrip("/")
        try:
            checkout_url = checkout_start(
                subscription_id=subscription.pk,
                success_url=site + reverse("billing:checkout_success") + "?session_id={CHECKOUT_SESSION_ID}",
                cancel_url=site + reverse("billing:checkout_cancel"),
            )
        except BILLING_FAILURES as exc:
            payment_note = f"no payment link yet ({exc}); the customer can pay from their dashboard"
    context = {
        "store": store,
        "plan": plan,
        "checkout_url": checkout_url,
        "skip_payment": skip_payment,
        "set_password_path": _set_password_path(customer) if customer_created else "",
        "login_path": reverse("accounts:login"),
    }
    try:
        email_send(template="store_opened_by_staff", to=[customer.email], context=context)
    except Exception as exc:  # noqa: BLE001 - the store exists either way; staff are told to reach the customer
        logger.warning("store %s opened by staff, but the e-mail to %s failed: %s", store.pk, customer.email, exc)
        payment_note = f"{payment_note + '; ' if payment_note else ''}the e-mail to {customer.email} failed: {exc}"
    return StaffOrder(subscription, store, customer_created, checkout_url, payment_note)


def _set_password_path(user: User) -> str:
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("accounts:password_reset_confirm", args=[uid, default_token_generator.make_token(user)])
