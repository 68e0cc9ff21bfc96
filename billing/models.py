from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Platform(models.TextChoices):
    WOOCOMMERCE = "woocommerce", "WooCommerce"
    MAGENTO = "magento", "Magento 2"


class Plan(models.Model):
    """The local catalogue: what a merchant can buy. Stripe mirrors it (dj-stripe Product and Price)."""

    class Tier(models.TextChoices):
        SINGLE = "single", "Single store"
        MULTI = "multi", "Multi-store"

    FEATURE_FLAGS = (
        "daily_backups",
        "email_support",
        "premium_plugins",
        "support_24_7",
        "redis_cache",
        "staging",
        "sla_uptime",
        "advanced_security",
        "centralized_management",
        "white_label",
        "dedicated_support",
    )

    platform = models.CharField(max_length=20, choices=Platform.choices)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    tier = models.CharField(max_length=10, choices=Tier.choices, default=Tier.SINGLE)
    price_monthly = models.DecimalField(max_digits=8, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    store_limit = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    memory_mb = models.PositiveIntegerField(validators=[MinValueValidator(1024), MaxValueValidator(16 * 1024)])
    cpu_limit = models.DecimalField(
        max_digits=3, decimal_places=1, validators=[MinValueValidator(Decimal("0.5")), MaxValueValidator(Decimal("8"))]
    )
    display_order = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    daily_backups = models.BooleanField(default=True)
    email_support = models.BooleanField(default=True)
    premium_plugins = models.BooleanField(default=False)
    support_24_7 = models.BooleanField("24/7 support", default=False)
    redis_cache = models.BooleanField(default=True)
    staging = models.BooleanField(default=False)
    sla_uptime = models.BooleanField("SLA uptime", default=False)
    advanced_security = models.BooleanField(default=False)
    centralized_management = models.BooleanField(default=False)
    white_label = models.BooleanField(default=False)
    dedicated_support = models.BooleanField(default=False)

    stripe_product = models.ForeignKey(
        "djstripe.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stripe_price = models.ForeignKey(
        "djstripe.Price", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["platform", "display_order", "price_monthly"]

    def __str__(self):
        return f"{self.get_platform_display()} {self.name}"

    @property
    def features(self) -> list[str]:
        return [self._meta.get_field(flag).verbose_name for flag in self.FEATURE_FLAGS if getattr(self, flag)]
