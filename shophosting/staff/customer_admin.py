"""The staff's Customer page: each customer with their subscription's state and their live stores. It reads
billing and stores, which accounts sits below, so it is registered from the composition root
(shophosting/admin.py) rather than from accounts/admin.py."""

from django.contrib import admin, messages
from django.db.models import Count, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils.html import format_html
from django_otp import user_has_device

from accounts.models import Customer
from accounts.services import customer_active_set
from billing.models import Subscription
from stores.models import Store


class SubscriptionStateFilter(admin.SimpleListFilter):
    title = "subscription"
    parameter_name = "subscription"

    def lookups(self, request, model_admin):
        return [*Subscription.Status.choices, ("none", "No subscription")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(subscription_state__isnull=True)
        if self.value():
            return queryset.filter(subscription_state=self.value())
        return queryset


class CustomerStoreInline(admin.TabularInline):
    model = Store
    fk_name = "customer"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["domain", "plan", "status", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    """Merchants. New ones come from signup or from Stores → Add (with the store they order)."""

    list_display = ["email", "full_name", "company", "store_count", "subscription", "is_active", "date_joined"]
    list_filter = [SubscriptionStateFilter, "is_active", "date_joined"]
    search_fields = ["email", "first_name", "last_name", "company", "stores__domain"]
    fields = ["email", "first_name", "last_name", "company", "is_active", "two_factor", "last_login", "date_joined"]
    readonly_fields = ["is_active", "two_factor", "last_login", "date_joined"]
    inlines = [CustomerStoreInline]
    actions = ["deactivate", "reactivate"]

    def get_queryset(self, request):
        newest = Subscription.objects.filter(customer=OuterRef("pk")).order_by("-created_at", "-pk")
        return (
            super()
            .get_queryset(request)
            .annotate(
                live_stores=Count("stores", filter=~Q(stores__status=Store.Status.DELETED), distinct=True),
                subscription_state=Subquery(newest.values("status")[:1]),
            )
        )

    @admin.display(description="name")
    def full_name(self, user):
        return user.get_full_name()

    @admin.display(description="stores", ordering="live_stores")
    def store_count(self, user):
        url = reverse("admin:stores_store_changelist") + f"?customer__id__exact={user.pk}"
        return format_html('<a href="{}">{}</a>', url, user.live_stores)

    @admin.display(description="subscription", ordering="subscription_state")
    def subscription(self, user):
        return dict(Subscription.Status.choices).get(user.subscription_state, "–")

    @admin.display(description="two-factor sign-in", boolean=True)
    def two_factor(self, user):
        return user_has_device(user, confirmed=True)

    def has_add_permission(self, request):
        return False  # a customer comes with a store: Stores → Add

    def has_delete_permission(self, request, obj=None):
        return False  # their stores, subscriptions and invoices must stay accountable; deactivate instead

    def _set_active(self, request, queryset, active: bool):
        done = [customer_active_set(user=u, active=active, actor=request.user, request=request).email for u in queryset]
        if done:
            what = "Sign-in allowed again for" if active else "Sign-in blocked for"
            self.message_user(request, f"{what}: {', '.join(done)}.", messages.SUCCESS)

    @admin.action(description="Block sign-in (stores keep running)", permissions=["change"])
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)

    @admin.action(description="Allow sign-in again", permissions=["change"])
    def reactivate(self, request, queryset):
        self._set_active(request, queryset, True)
