"""The plan catalogue: the seed plans, and pricing sync to Stripe. The local Plan is the source; Stripe prices
are immutable, so an amount change is a new price (plan_price_create), never an edit."""

from decimal import Decimal

from django.db import transaction

from accounts.models import User
from accounts.services import audit_record
from billing import stripe_gateway
from billing.exceptions import BillingRefused
from billing.models import Plan, Platform, Subscription, money_text
from billing.selectors import plan_stripe_fields

SS = Subscription.Status

# (name, WooCommerce price, Magento price, store limit, WooCommerce (GB, CPU), Magento (GB, CPU), flags on).
# Only flags of Plan.FEATURE_FLAGS: premium plugins, central management and white label were taken off sale
# (nothing delivered them; billing/README.md, "What a plan sells").
SEED_CATALOGUE = [
    ("Commerce Core", 99, 125, 1, (1, "1.0"), (2, "1.0"), {"daily_backups", "email_support", "redis_cache"}),
    (
        "Commerce Pro",
        149,
        189,
        1,
        (2, "2.0"),
        (4, "2.0"),
        {"daily_backups", "email_support", "redis_cache", "staging"},
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
        {"daily_backups", "email_support", "redis_cache", "staging"},
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
            "staging",
            "support_24_7",
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
                "disk_allowance_gb": memory_gb * 10,  # 10 GB of disk for every GB of memory
                "display_order": order,
                **{flag: flag in flags for flag in Plan.FEATURE_FLAGS},
            }
            results.append(Plan.objects.get_or_create(slug=slug, defaults=defaults))
    return results


def _plan_metadata(plan: Plan) -> dict[str, str]:
    return {"plan": plan.slug, "platform": plan.platform, "store_limit": str(plan.store_limit)}


def plan_price_create(*, plan_id: int, actor: User | None = None) -> Plan:
    """Create a Stripe price for the plan's amount, make it the product's default and archive the old one.

    The product is created first if it is missing. Subscriptions keep their old price until migrated."""
    plan = Plan.objects.select_related("stripe_product", "stripe_price").get(pk=plan_id)
    fields = plan_stripe_fields(plan)
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
    fields = plan_stripe_fields(plan)
    stripe_amount = plan.stripe_price.stripe_data.get("unit_amount")
    if stripe_amount != fields["amount_cents"]:
        raise BillingRefused(
            f"{plan}: the price changed from {money_text(stripe_amount)} to {money_text(fields['amount_cents'])}. "
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
