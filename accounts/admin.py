from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from accounts.models import AuditEvent, User
from accounts.services import staff_password_reset


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "company", "is_staff", "is_active", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active", "groups"]
    search_fields = ["email", "first_name", "last_name", "company"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "company")}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    actions = ["reset_staff_password"]

    @admin.action(description="Reset password (temporary, to be changed at next sign-in)")
    def reset_staff_password(self, request, queryset):
        if not request.user.is_superuser:
            raise PermissionDenied  # only super admins manage staff accounts
        for user in queryset.filter(is_staff=True):
            try:
                shown_once = staff_password_reset(user=user, actor=request.user, request=request)
            except PermissionError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            if shown_once:
                self.message_user(
                    request,
                    f"The e-mail to {user.email} failed. Give them this temporary password now; it is not shown "
                    f"again: {shown_once}",
                    messages.WARNING,
                )
            else:
                self.message_user(request, f"{user.email} was e-mailed a temporary password.", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is written by accounts.services.audit_record and never edited."""

    list_display = ["created_at", "event", "actor_email", "ip_address", "path"]
    list_filter = ["event"]
    search_fields = ["actor_email", "ip_address", "path"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
