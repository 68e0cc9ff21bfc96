from decimal import Decimal

from django.db import transaction

from billing.models import Plan, Platform

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
