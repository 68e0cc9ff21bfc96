"""Reads for billing: the plan catalogue, a customer's billing page, plan sync status and the staff overview.

Stripe data comes from dj-stripe's mirror (each object's `stripe_data`), never from the API."""

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from djstripe import models as djstripe_models

from billing.models import FIRST_RESPONSE_TARGET_WITHOUT_PLAN, Plan, Platform, Subscription
from stores.models import Store

SS = Subscription.Status
# Stripe subscription statuses that are billed every period, and so count towards MRR.
MRR_STATUSES = ("active", "past_due")
# How many months one billing interval lasts: a price per interval divided by this is the price per month.
MONTHS_PER_INTERVAL = {"day": Decimal(12) / Decimal(365), "week": Decimal(12) / Decimal(52), "month": 1, "year": 12}


def plan_list_public() -> QuerySet[Plan]:
    return Plan.objects.filter(active=True).order_by("platform", "display_order", "price_monthly")


@dataclass
class PlatformCatalogue:
    platform: str
    label: str
    plans: list[Plan]
    # (flag, feature name, [whether each plan above has it]) for every feature flag some plan of the platform has
    feature_rows: list[tuple[str, str, list[bool]]]


def plan_catalogue_by_platform() -> list[PlatformCatalogue]:
    """The public plans grouped by platform, with the feature matrix built from each plan's flags."""
    catalogue = []
    plans = list(plan_list_public())
    for platform, label in Platform.choices:
        group = [plan for plan in plans if plan.platform == platform]
        if not group:
            continue
        rows = [
            (flag, Plan._meta.get_field(flag).verbose_name, [getattr(plan, flag) for plan in group])
            for flag in Plan.FEATURE_FLAGS
        ]
        catalogue.append(PlatformCatalogue(platform, label, group, [row for row in rows if any(row[2])]))
    return catalogue


# The subscriptions whose plan's support a customer gets: paid, or within the grace period of a failed
# payment. A checkout not paid yet, a suspended or a canceled subscription promises no faster answer.
SUPPORTED_STATUSES = (SS.ACTIVE, SS.PAST_DUE)


def customer_first_response_target(customer_id: int) -> dt.timedelta:
    """How soon a new ticket of this customer is owed its first staff answer: the quickest target among the
    plans of their supported subscriptions (FIRST_RESPONSE_TARGETS), or the target for customers without one."""
    plans = Plan.objects.filter(
        subscriptions__customer_id=customer_id, subscriptions__status__in=SUPPORTED_STATUSES
    ).distinct()
    targets = [plan.first_response_target for plan in plans]
    return min((target for target in targets if target is not None), default=FIRST_RESPONSE_TARGET_WITHOUT_PLAN)


def plan_for_signup(slug: str) -> Plan | None:
    return Plan.objects.filter(slug=slug, active=True).first()


def _timestamp(value) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, tz=dt.UTC) if value else None


def _items(stripe_subscription: dict) -> list[dict]:
    return (stripe_subscription.get("items") or {}).get("data") or []


def _price_of(item: dict) -> dict:
    price = item.get("price") or {}
    return price if isinstance(price, dict) else {"id": price}


def subscription_monthly_cents(stripe_subscription: dict) -> Decimal:
    """The subscription's recurring amount per month, whatever its billing interval (discounts not applied)."""
    total = Decimal(0)
    for item in _items(stripe_subscription):
        price = _price_of(item)
        recurring = price.get("recurring") or {}
        months = MONTHS_PER_INTERVAL.get(recurring.get("interval"))
        if months is None:
            continue
        amount = Decimal(price.get("unit_amount") or 0) * (item.get("quantity") or 1)
        total += amount / (Decimal(months) * (recurring.get("interval_count") or 1))
    return total


def _next_charge(stripe_subscription: dict) -> tuple[dt.datetime | None, int | None]:
    """When the next charge falls and how much it is. The period end sits on the items since API 2025-03."""
    if stripe_subscription.get("status") in ("canceled", "incomplete_expired") or stripe_subscription.get(
        "cancel_at_period_end"
    ):
        return None, None
    items = _items(stripe_subscription)
    period_end = stripe_subscription.get("current_period_end") or next(
        (item.get("current_period_end") for item in items if item.get("current_period_end")), None
    )
    amount = sum((_price_of(item).get("unit_amount") or 0) * (item.get("quantity") or 1) for item in items)
    return _timestamp(period_end), amount


@dataclass
class SubscriptionSummary:
    subscription: Subscription
    stores: list[Store]
    stripe_status: str = ""
    next_charge_at: dt.datetime | None = None
    next_charge_cents: int | None = None
    cancel_at_period_end: bool = False

    @property
    def can_add_store(self) -> bool:
        return self.subscription.status == SS.ACTIVE and len(self.stores) < self.subscription.plan.store_limit


@dataclass
class InvoiceRow:
    number: str
    created: dt.datetime | None
    status: str
    amount_cents: int
    hosted_url: str
    pdf_url: str


@dataclass
class CustomerBilling:
    subscriptions: list[SubscriptionSummary] = field(default_factory=list)
    invoices: list[InvoiceRow] = field(default_factory=list)
    has_stripe_customer: bool = False


def _invoice_row(invoice) -> InvoiceRow:
    data = invoice.stripe_data
    return InvoiceRow(
        number=data.get("number") or invoice.id,
        created=invoice.created,
        status=data.get("status") or "",
        amount_cents=data.get("amount_paid") if data.get("status") == "paid" else data.get("amount_due") or 0,
        hosted_url=data.get("hosted_invoice_url") or "",
        pdf_url=data.get("invoice_pdf") or "",
    )


def checkout_state(subscription: Subscription) -> str:
    """What the checkout return page tells the customer: "paid", "processing" (a bank debit that has not
    cleared), "failed" (a delayed payment bounced; they can pay again) or "waiting" (Stripe's confirmation
    has not arrived yet)."""
    SS = Subscription.Status
    if subscription.status == SS.PAYMENT_PENDING:
        return "processing"
    if subscription.status == SS.CHECKOUT:
        return "failed" if subscription.payment_failed_event_at else "waiting"
    return "paid"


def customer_billing(customer) -> CustomerBilling:
    subscriptions = list(
        Subscription.objects.filter(customer=customer)
        .exclude(status__in=[SS.ABANDONED, SS.ENDED])
        .select_related("plan")
        .prefetch_related("stores")
    )
    mirrored = {
        s.id: s.stripe_data
        for s in djstripe_models.Subscription.objects.filter(
            id__in=[s.stripe_subscription_id for s in subscriptions if s.stripe_subscription_id]
        )
    }
    result = CustomerBilling()
    for subscription in subscriptions:
        stripe_data = mirrored.get(subscription.stripe_subscription_id, {})
        next_at, next_cents = _next_charge(stripe_data) if stripe_data else (None, None)
        result.subscriptions.append(
            SubscriptionSummary(
                subscription=subscription,
                stores=[
                    s
                    for s in subscription.stores.all()
                    if s.status not in (Store.Status.DELETED, Store.Status.DELETING)
                ],
                stripe_status=stripe_data.get("status", ""),
                next_charge_at=next_at,
                next_charge_cents=next_cents,
                cancel_at_period_end=bool(stripe_data.get("cancel_at_period_end")),
            )
        )
    customer_ids = {s.stripe_customer_id for s in subscriptions if s.stripe_customer_id}
    result.has_stripe_customer = bool(customer_ids)
    invoices = djstripe_models.Invoice.objects.filter(customer__id__in=customer_ids).order_by("-created")[:24]
    result.invoices = [_invoice_row(invoice) for invoice in invoices]
    return result


# --- Pricing sync status ----------------------------------------------------------------------------------


class SyncStatus:
    IN_SYNC = "in_sync"
    LOCAL_CHANGED = "local_changed"
    STRIPE_CHANGED = "stripe_changed"
    MISSING = "missing"

    LABELS = {
        IN_SYNC: "In sync",
        LOCAL_CHANGED: "Local changes not in Stripe",
        STRIPE_CHANGED: "Changed in Stripe",
        MISSING: "Missing in Stripe",
    }


def plan_stripe_view(plan: Plan) -> dict:
    """What the dj-stripe mirror says about the plan's product and price, in the shape of Plan.stripe_synced."""
    product = plan.stripe_product.stripe_data if plan.stripe_product else {}
    price = plan.stripe_price.stripe_data if plan.stripe_price else {}
    return {
        "name": product.get("name"),
        "description": product.get("description") or "",
        "amount_cents": price.get("unit_amount"),
        "active": bool(price.get("active")),
    }


def plan_stripe_fields(plan: Plan) -> dict:
    """What the plan asks Stripe to hold for it, in the shape of Plan.stripe_synced (what was last sent)."""
    return {
        "name": f"{plan.get_platform_display()} {plan.name}",
        "description": plan.description,
        "amount_cents": int(plan.price_monthly * 100),
        "active": plan.active,
    }


def plan_sync_status(plan: Plan) -> tuple[str, list[str]]:
    """(status, the fields that differ). Stripe-side drift wins: it must be looked at before pushing again."""
    if plan.stripe_product_id is None or plan.stripe_price_id is None:
        return SyncStatus.MISSING, []
    synced = plan.stripe_synced or {}
    stripe = plan_stripe_view(plan)
    drifted = [name for name, value in stripe.items() if synced.get(name) != value]
    if drifted:
        return SyncStatus.STRIPE_CHANGED, drifted
    local = plan_stripe_fields(plan)
    changed = [name for name, value in local.items() if synced.get(name) != value]
    return (SyncStatus.LOCAL_CHANGED, changed) if changed else (SyncStatus.IN_SYNC, [])


# --- Staff billing overview -------------------------------------------------------------------------------


@dataclass
class PastDueRow:
    subscription: Subscription
    days_overdue: int


@dataclass
class BillingOverview:
    mrr_cents: Decimal
    subscriptions_by_status: dict[str, int]
    subscriptions_by_plan: list[tuple[str, int, Decimal]]
    revenue_this_month_cents: int
    recent_invoices: list[InvoiceRow]
    past_due: list[PastDueRow]
    local_by_status: dict[str, int]


def _month_start(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def billing_overview(*, now: dt.datetime | None = None) -> BillingOverview:
    """MRR, subscriptions by status and plan, revenue this month, recent invoices and the past-due list."""
    now = now or timezone.now()
    plans_by_price = {p.stripe_price_id: p for p in Plan.objects.exclude(stripe_price=None)}
    plans_by_product = {p.stripe_product_id: p for p in Plan.objects.exclude(stripe_product=None)}
    product_names = {p.id: p.stripe_data.get("name") for p in djstripe_models.Product.objects.only("id", "stripe_data")}
    by_status: Counter = Counter()
    by_plan: dict[str, list] = {}
    mrr = Decimal(0)
    for subscription in djstripe_models.Subscription.objects.only("id", "stripe_data"):
        data = subscription.stripe_data
        by_status[data.get("status", "unknown")] += 1
        if data.get("status") not in MRR_STATUSES:
            continue
        monthly = subscription_monthly_cents(data)
        mrr += monthly
        price = _price_of(_items(data)[0]) if _items(data) else {}
        plan = plans_by_price.get(price.get("id")) or plans_by_product.get(price.get("product"))
        label = (
            str(plan) if plan else (price.get("nickname") or product_names.get(price.get("product")) or price.get("id"))
        )
        entry = by_plan.setdefault(label, [label, 0, Decimal(0)])
        entry[1] += 1
        entry[2] += monthly
    month_start = int(_month_start(now).timestamp())
    revenue = 0
    for invoice in djstripe_models.Invoice.objects.filter(created__gte=_month_start(now) - dt.timedelta(days=62)):
        data = invoice.stripe_data
        paid_at = (data.get("status_transitions") or {}).get("paid_at")
        if data.get("status") == "paid" and paid_at and paid_at >= month_start and paid_at <= now.timestamp():
            revenue += data.get("amount_paid") or 0
    recent = [_invoice_row(i) for i in djstripe_models.Invoice.objects.order_by("-created")[:10]]
    past_due = [
        PastDueRow(subscription=s, days_overdue=(now - s.past_due_since).days)
        for s in Subscription.objects.filter(status__in=[SS.PAST_DUE, SS.SUSPENDED], past_due_since__isnull=False)
        .select_related("customer", "plan")
        .order_by("past_due_since")
    ]
    local = dict(Subscription.objects.order_by().values_list("status").annotate(n=Count("pk")))
    return BillingOverview(
        mrr_cents=mrr.quantize(Decimal(1)),
        subscriptions_by_status=dict(sorted(by_status.items())),
        subscriptions_by_plan=sorted((tuple(v) for v in by_plan.values()), key=lambda row: -row[2]),
        revenue_this_month_cents=revenue,
        recent_invoices=recent,
        past_due=past_due,
        local_by_status=local,
    )


def subscriptions_with_room(customer) -> list[Subscription]:
    """The customer's active subscriptions that can take another store (multi-store plans below their limit)."""
    live = ~Q(stores__status__in=[Store.Status.DELETING, Store.Status.DELETED])
    subscriptions = (
        Subscription.objects.filter(customer=customer, status=SS.ACTIVE)
        .select_related("plan")
        .annotate(live_stores=Count("stores", filter=live))
    )
    return [s for s in subscriptions if s.live_stores < s.plan.store_limit]
