from django.contrib import admin

from billing.models import Plan


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "platform", "tier", "price_monthly", "memory_mb", "cpu_limit", "store_limit", "active"]
    list_filter = ["platform", "tier", "active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["platform", "name"]}
    ordering = ["platform", "display_order"]
