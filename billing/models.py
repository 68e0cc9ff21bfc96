from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from shophosting.core.customer_pages import CustomerPagesQuerySet
from shophosting.core.transitions import StatusEvent
from stores.models import Platform


def money_text(cents) -> str:
    """Stripe amounts are integer cents: 14900 -> "$149.00". A missing amount (None) reads as $0.00."""
    return f"${Decimal(cents or 0) / 100:,.2f}"


# How soon staff owe a ticket its first answer, by the plan's support flag (why these: billing/README.md,
# "Support response targets"). A customer with several live subscriptions gets the quickest of them; one
# with none gets FIRST_RESPONSE_TARGET_WITHOUT_PLAN. The clock runs around the clock: every target is in
# wall-clock hours from the ticket's opening.
FIRST_RESPONSE_TARGETS = {
    "dedicated_support": timedelta(hours=1),
    "support_24_7": timedelta(hours=4),
    "email_support": timedelta(hours=24),
}
FIRST_RESPONSE_TARGET_WITHOUT_PLAN = timedelta(hours=48)


class Plan(models.Model):
    """The local catalogue: what a merchant can buy. Stripe mirrors it (dj-stripe Product and Price)."""

    class Tier(models.TextChoices):
        SINGLE = "single", "Single store"
        MULTI = "multi", "Multi-store"

    # What the pricing page, the signup page and the catalogue may sell. Each one needs behaviour behind it:
    # tests/test_plan_features.py fails for a flag sold here that nothing delivers (billing/README.md).
    FEATURE_FLAGS = (
        "daily_backups",
        "email_support",
        "support_24_7",
        "redis_cache",
        "staging",
        "sla_uptime",
        "advanced_security",
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
    disk_allowance_gb = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1)],
        help_text="Disk each store may use (its database and files). Merchants are warned at 80 %.",
    )
    display_order = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    daily_backups = models.BooleanField(default=True)
    email_support = models.BooleanField(default=True)
    support_24_7 = models.BooleanField("24/7 support", default=False)
    redis_cache = models.BooleanField(default=True)
    staging = models.BooleanField(default=False)
    sla_uptime = models.BooleanField("SLA uptime", default=False)
    sla_target_percent = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        default=Decimal("99.900"),
        validators=[MinValueValidator(Decimal("90")), MaxValueValidator(Decimal("100"))],
        help_text="Monthly uptime promised by sla_uptime plans; months below it are listed for credits.",
    )
    advanced_security = models.BooleanField(default=False)
    dedicated_support = models.BooleanField(default=False)

    description = models.TextField(blank=True, help_text="Shown on the pricing page and as the Stripe product's text.")

    # Keyed by the Stripe id (prod_…, price_…), so stripe_product_id/stripe_price_id are Stripe's own ids.
    stripe_product = models.ForeignKey(
        "djstripe.Product", to_field="id", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stripe_price = models.ForeignKey(
        "djstripe.Price", to_field="id", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What was sent to Stripe at the last sync: {"name", "description", "amount_cents", "active"}. Comparing it
    # with the plan tells a local edit apart from a change made in Stripe.
    stripe_synced = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["platform", "display_order", "price_monthly"]

    def __str__(self):
        return f"{self.get_platform_display()} {self.name}"

    @property
    def features(self) -> list[str]:
        return [self._meta.get_field(flag).verbose_name for flag in self.FEATURE_FLAGS if getattr(self, flag)]

    @property
    def first_response_target(self) -> timedelta | None:
        """The quickest first answer to a ticket this plan's support flags promise; None when it has none."""
        targets = [target for flag, target in FIRST_RESPONSE_TARGETS.items() if getattr(self, flag)]
        return min(targets, default=None)


class Subscription(models.Model):
    """A customer's paid plan, mirrored from one Stripe subscription. Its stores hang off it.

    `status` is written only by `billing.services.subscriptions.subscription_transition`, with a
    SubscriptionEvent row."""

    class Status(models.TextChoices):
        CHECKOUT = "checkout", "Awaiting checkout"
        PAYMENT_PENDING = "payment_pending", "Payment processing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        SUSPENDED = "suspended", "Suspended for non-payment"
        CANCELED = "canceled", "Canceled (stores kept until teardown)"
        ENDED = "ended", "Ended (stores torn down)"
        ABANDONED = "abandoned", "Checkout abandoned"

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="billing_subscriptions"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CHECKOUT, db_index=True)
    checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    past_due_since = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    teardown_at = models.DateTimeField(null=True, blank=True, help_text="When a canceled subscription's stores go.")
    # When the current Checkout Session was opened: a second "pay now" click within CHECKOUT_REUSE_SECONDS
    # gets the same session instead of a second one.
    checkout_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Stripe's `created` time of the newest payment and payment-failure events applied. Stripe does not deliver
    # in order: an event older than the newest one that said the opposite is recorded and otherwise ignored.
    paid_event_at = models.DateTimeField(null=True, blank=True, editable=False)
    payment_failed_event_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The customer's dashboard offers "Add a store" by its subscriptions (shophosting/core/customer_pages.py).
    objects = CustomerPagesQuerySet.as_manager()
    customer_pages_path = "customer_id"

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "customer subscription"

    def __str__(self):
        return f"{self.customer} · {self.plan} ({self.get_status_display()})"


class SubscriptionEvent(StatusEvent):
    """One row per status change or notable billing fact, with the Stripe event that caused it."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=20, choices=Subscription.Status.choices, blank=True)
    new_status = models.CharField(max_length=20, choices=Subscription.Status.choices)
    stripe_event_id = models.CharField(max_length=255, blank=True)

    def __str__(self):
        return f"{self.subscription_id}: {super().__str__()}"


class StoreHold(models.Model):
    """A store billing stopped because its subscription's plan no longer covers it (a downgrade to fewer
    stores). It stays suspended, and is never deleted for it, until the plan covers it again."""

    store = models.OneToOneField("stores.Store", on_delete=models.CASCADE, related_name="billing_hold")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="store_holds")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+", help_text="The plan that left it out.")
    stripe_event_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["store_id"]

    def __str__(self):
        return f"store {self.store_id} held: beyond the {self.plan} store limit"
