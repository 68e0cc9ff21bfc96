from django.contrib import admin

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
    list_display = ["domain", "customer", "plan", "status", "tls_status", "host", "port", "created_at"]
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
