from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.db.models import OuterRef, Subquery
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from stores.models import Host, Store, StoreEvent


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "docker_url",
        "bind_address",
        "port_range_start",
        "port_range_end",
        "memory_capacity_mb",
        "cpu_capacity",
        "active",
    ]
    list_filter = ["active"]


class StoreEventInline(admin.TabularInline):
    model = StoreEvent
    extra = 0
    can_delete = False
    readonly_fields = ["created_at", "old_status", "new_status", "actor", "note"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ["domain", "customer", "plan", "status", "tls_status", "host", "port", "last_backup", "created_at"]
    list_filter = ["status", "platform", "tls_status", "host"]
    search_fields = ["domain", "customer__email", "site_title"]
    list_select_related = ["customer", "plan", "host"]
    # Status and placement change only through services (store_transition, store_place).
    readonly_fields = [
        "status",
        "status_message",
        "host",
        "port",
        "live_domain",
        "tls_status",
        "tls_error",
        "tls_attempts",
        "tls_next_attempt_at",
        "created_at",
        "updated_at",
    ]
    exclude = ["credentials_encrypted"]
    inlines = [StoreEventInline]

    def get_queryset(self, request):
        # The backup columns come from two subqueries, so the list stays one query however many stores.
        from backups.models import BackupRun, RunStatus

        runs = BackupRun.objects.filter(store=OuterRef("pk")).order_by("-created_at")
        succeeded = runs.filter(status=RunStatus.SUCCEEDED)
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_backup_at=Subquery(succeeded.values("finished_at")[:1]),
                last_backup_bytes=Subquery(succeeded.values("size_bytes")[:1]),
                last_backup_status=Subquery(runs.values("status")[:1]),
            )
        )

    @admin.display(description="Last backup", ordering="last_backup_at")
    def last_backup(self, store):
        """Age and size of the last good backup; red when the latest run failed or the last good one is old."""
        if store.last_backup_at is None:
            text, stale = "never", store.status == Store.Status.ACTIVE
        else:
            age = timezone.now() - store.last_backup_at
            text = f"{timesince(store.last_backup_at).split(',')[0]} ago · {filesizeformat(store.last_backup_bytes)}"
            stale = age > timedelta(hours=2 * settings.BACKUP_INTERVAL_HOURS)
        if store.last_backup_status == "failed":
            text, stale = f"{text} · last run failed", True
        return format_html('<span style="color:{}">{}</span>', "#b91c1c" if stale else "inherit", text)
