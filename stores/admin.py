from django.contrib import admin

from stores.models import Host


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
