"""The staff's Customer page: each customer with their subscription's state and their live stores. It reads
billing and stores, which accounts sits below, so it is registered from the composition root
(shophosting/admin.py) rather than from accounts/admin.py."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Q, Subquery
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django_otp import user_has_device

from accounts.closure import CLOSE_PERMISSION, AccountClosureRefused
from accounts.models import AccountClosure, Customer
from accounts.services import customer_active_set
from billing.exceptions import BILLING_FAILURES
from billing.models import Subscription
from billing.services.closure import account_close, closure_retention_days
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
    fields = [
        "email",
        "first_name",
        "last_name",
        "company",
        "is_active",
        "account_closure",
        "two_factor",
        "last_login",
        "date_joined",
    ]
    readonly_fields = ["is_active", "account_closure", "two_factor", "last_login", "date_joined"]
    inlines = [CustomerStoreInline]
    actions = ["deactivate", "reactivate", "close_account"]

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

    @admin.display(description="account closure")
    def account_closure(self, user):
        closure = AccountClosure.objects.filter(user=user).first()
        if closure is None:
            return "–"
        purge = f"; purged after {closure.purge_after:%Y-%m-%d}" if closure.purge_after else ""
        asked = f"asked {closure.requested_at:%Y-%m-%d} by {closure.get_via_display().lower()}"
        return f"{closure.get_status_display()} ({asked}{purge})"

    @admin.display(description="two-factor sign-in", boolean=True)
    def two_factor(self, user):
        return user_has_device(user, confirmed=True)

    def has_add_permission(self, request):
        return False  # a customer comes with a store: Stores → Add

    def has_delete_permission(self, request, obj=None):
        return False  # their stores, subscriptions and invoices must stay accountable; deactivate instead

    def has_close_account_permission(self, request):
        return request.user.has_perm(CLOSE_PERMISSION)

    def _set_active(self, request, queryset, active: bool):
        done = []
        for user in queryset:
            try:
                done.append(customer_active_set(user=user, active=active, actor=request.user, request=request).email)
            except PermissionError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        if done:
            what = "Sign-in allowed again for" if active else "Sign-in blocked for"
            self.message_user(request, f"{what}: {', '.join(done)}.", messages.SUCCESS)

    @admin.action(description="Block sign-in (stores keep running)", permissions=["change"])
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)

    @admin.action(description="Allow sign-in again", permissions=["change"])
    def reactivate(self, request, queryset):
        self._set_active(request, queryset, True)

    @admin.action(description="Close account (the customer asked)…", permissions=["close_account"])
    def close_account(self, request, queryset):
        """billing.services.closure.account_close for each selected customer, after a confirmation page that
        states what happens and asks how the customer asked."""
        form = AccountCloseStaffForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            for customer in queryset:
                try:
                    account_close(
                        customer_id=customer.pk, actor=request.user, reason=form.cleaned_data["reason"], request=request
                    )
                except (AccountClosureRefused, PermissionDenied, *BILLING_FAILURES) as exc:
                    self.message_user(request, f"Not closed: {customer.email}: {exc}", messages.ERROR)
                else:
                    self.message_user(
                        request,
                        f"Closing the account of {customer.email}: sign-in is refused; the stores go after their "
                        "final backups.",
                        messages.SUCCESS,
                    )
            return None
        return TemplateResponse(
            request,
            "admin/accounts/customer/close_account.html",
            {
                **self.admin_site.each_context(request),
                "title": "Close customer accounts",
                "opts": self.model._meta,
                "customers": [
                    (
                        customer,
                        list(customer.stores.exclude(status=Store.Status.DELETED)),
                        closure_retention_days(customer),
                    )
                    for customer in queryset
                ],
                "form": form,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


class AccountCloseStaffForm(forms.Form):
    reason = forms.CharField(
        label="How the customer asked",
        max_length=500,
        help_text="For example: e-mail from the account's address on 5 December, ticket T-1234.",
    )
