"""Staff pricing and billing: plans with Stripe sync, customer subscriptions, and the billing overview."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from billing import selectors
from billing.exceptions import BILLING_FAILURES
from billing.models import Plan, Subscription, SubscriptionEvent
from billing.services.plans import plan_price_create, plan_stripe_update, plan_subscriptions_migrate


class PlanSyncForm(forms.Form):
    CREATE = "create_price"
    UPDATE = "update"
    mode = forms.ChoiceField(
        widget=forms.RadioSelect,
        choices=[
            (
                CREATE,
                "Create new price: a new Stripe price with the plan's amount becomes the product's default and the "
                "old price is archived. Existing subscriptions keep their price until you migrate them.",
            ),
            (
                UPDATE,
                "Update existing: send the name, description, metadata and active flag. Refused if the amount "
                "changed, because Stripe prices cannot be edited.",
            ),
        ],
    )


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "platform",
        "tier",
        "price_monthly",
        "memory_mb",
        "cpu_limit",
        "store_limit",
        "active",
        "stripe_sync_status",
    ]
    list_filter = ["platform", "tier", "active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["platform", "name"]}
    ordering = ["platform", "display_order"]
    readonly_fields = ["stripe_product", "stripe_price", "stripe_sync_status"]
    actions = ["sync_to_stripe", "migrate_subscriptions"]

    @admin.display(description="Stripe")
    def stripe_sync_status(self, plan):
        status, fields = selectors.plan_sync_status(plan)
        label = selectors.SyncStatus.LABELS[status]
        detail = f" ({', '.join(fields)})" if fields else ""
        return format_html('<span class="sync sync-{}">{}{}</span>', status, label, detail)

    @admin.action(description="Sync to Stripe…", permissions=["change"])
    def sync_to_stripe(self, request, queryset):
        form = PlanSyncForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            service = plan_price_create if form.cleaned_data["mode"] == PlanSyncForm.CREATE else plan_stripe_update
            for plan in queryset:
                try:
                    service(plan_id=plan.pk, actor=request.user)
                except BILLING_FAILURES as exc:
                    self.message_user(request, str(exc), messages.ERROR)
                else:
                    self.message_user(request, f"{plan}: synced to Stripe.", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/billing/plan/sync_to_stripe.html",
            {
                **self.admin_site.each_context(request),
                "title": "Sync plans to Stripe",
                "opts": self.model._meta,
                "plans": [(plan, *selectors.plan_sync_status(plan)) for plan in queryset],
                "form": form,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(description="Migrate subscriptions to the current price", permissions=["change"])
    def migrate_subscriptions(self, request, queryset):
        for plan in queryset:
            try:
                moved = plan_subscriptions_migrate(plan_id=plan.pk, actor=request.user)
            except BILLING_FAILURES as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{plan}: {len(moved)} subscription(s) moved to the current price.")


class SubscriptionEventInline(admin.TabularInline):
    model = SubscriptionEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "old_status", "new_status", "stripe_event_id", "actor", "note"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["pk", "customer", "plan", "status", "past_due_since", "teardown_at", "created_at"]
    list_filter = ["status", "plan__platform", "plan"]
    list_select_related = ["customer", "plan"]
    search_fields = ["customer__email", "stripe_subscription_id", "stripe_customer_id", "checkout_session_id"]
    readonly_fields = [
        "customer",
        "plan",
        "status",
        "checkout_session_id",
        "stripe_customer_id",
        "stripe_subscription_id",
        "past_due_since",
        "canceled_at",
        "teardown_at",
        "created_at",
        "updated_at",
    ]
    inlines = [SubscriptionEventInline]

    def has_add_permission(self, request):
        return False  # subscriptions start from a signup or the staff new-customer form

    def has_delete_permission(self, request, obj=None):
        return False  # the history is kept; cancel in Stripe instead

    def get_urls(self):
        overview = path(
            "overview/", self.admin_site.admin_view(self.overview_view), name="billing_subscription_overview"
        )
        return [overview, *super().get_urls()]

    def overview_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return TemplateResponse(
            request,
            "admin/billing/overview.html",
            {
                **self.admin_site.each_context(request),
                "title": "Billing overview",
                "opts": self.model._meta,
                "overview": selectors.billing_overview(),
                "subscriptions_url": reverse("admin:billing_subscription_changelist"),
            },
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "overview_url": reverse("admin:billing_subscription_overview")}
        return super().changelist_view(request, extra_context)
