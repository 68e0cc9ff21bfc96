"""Staff write and close status notices here; the staff site audits every add, change and action."""

from django.contrib import admin, messages

from shophosting.status import services
from shophosting.status.models import StatusNotice


@admin.register(StatusNotice)
class StatusNoticeAdmin(admin.ModelAdmin):
    list_display = ("title", "component", "severity", "started_at", "closed_at", "published")
    list_filter = ("published", "component", "severity", ("closed_at", admin.EmptyFieldListFilter))
    search_fields = ("title", "body")
    fields = ("title", "body", "component", "severity", "started_at", "closed_at", "published")
    actions = ("close",)

    def save_model(self, request, obj, form, change):
        services.notice_save(notice=obj, actor=request.user)

    @admin.action(description="Close the selected notices now (shown as resolved)", permissions=["change"])
    def close(self, request, queryset):
        closed = services.notices_close(notice_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Closed {closed} notice(s).", messages.SUCCESS)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        services.status_page_cache_clear()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        services.status_page_cache_clear()
