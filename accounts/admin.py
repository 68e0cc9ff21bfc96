from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from accounts.models import AuditEvent, StaffUser
from accounts.roles import Role
from accounts.services import (
    staff_active_set,
    staff_create,
    staff_password_reset,
    staff_role_of,
    staff_role_set,
)


def _report(modeladmin, request, done: list[str], refused: list[str], what: str) -> None:
    if done:
        modeladmin.message_user(request, f"{what}: {', '.join(done)}.", messages.SUCCESS)
    for reason in refused:
        modeladmin.message_user(request, reason, messages.ERROR)


# --- Admin users (staff) --------------------------------------------------------------------------------


class StaffCreateForm(forms.Form):
    email = forms.EmailField()
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.SUPPORT)


class StaffChangeForm(forms.ModelForm):
    role = forms.ChoiceField(choices=Role.choices)

    class Meta:
        model = StaffUser
        fields = ["email", "first_name", "last_name"]


@admin.register(StaffUser)
class StaffUserAdmin(admin.ModelAdmin):
    """Only super admins manage staff (the roles give admins view only). Nobody changes their own role or
    active flag, or deletes their own account, from here."""

    form = StaffChangeForm
    list_display = ["email", "full_name", "role", "is_active", "two_factor", "last_login"]
    list_filter = ["is_active", "is_superuser", "groups"]
    search_fields = ["email", "first_name", "last_name"]
    fields = ["email", "first_name", "last_name", "role", "is_active", "last_login", "date_joined"]
    readonly_fields = ["is_active", "last_login", "date_joined"]
    actions = ["reset_staff_password", "deactivate", "reactivate"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups", "totpdevice_set")

    @admin.display(description="name")
    def full_name(self, user):
        return user.get_full_name()

    @admin.display(description="role")
    def role(self, user):
        role = staff_role_of(user)
        return role.label if role else "none"

    @admin.display(description="2FA", boolean=True)
    def two_factor(self, user):
        return any(device.confirmed for device in user.totpdevice_set.all())

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and "role" in form.base_fields:
            role = staff_role_of(obj)
            form.base_fields["role"].initial = role.value if role else None
        return form

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.pk == request.user.pk:
            return [*self.readonly_fields, "role"]  # your own role is changed by another super admin
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.pk == request.user.pk:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, from the account's page, never your own
        return actions

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if "role" in form.cleaned_data and obj.pk != request.user.pk:
            staff_role_set(user=obj, role=Role(form.cleaned_data["role"]), actor=request.user, request=request)

    def add_view(self, request, form_url="", extra_context=None):
        """A new staff member: their temporary password is e-mailed (or shown once if the mail fails)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StaffCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            fields = form.cleaned_data
            try:
                user, shown_once = staff_create(
                    email=fields["email"],
                    role=Role(fields["role"]),
                    first_name=fields["first_name"],
                    last_name=fields["last_name"],
                    actor=request.user,
                    request=request,
                )
            except ValueError as exc:
                form.add_error("email", str(exc))
            else:
                self._password_message(request, user, shown_once)
                return redirect("admin:accounts_staffuser_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Add admin user",
            "opts": self.opts,
            "form": form,
            "intro": "They get an e-mail with a temporary password and must choose their own at the first sign-in.",
        }
        return TemplateResponse(request, "admin/staff/form_page.html", context)

    def _password_message(self, request, user, shown_once):
        if shown_once:
            self.message_user(
                request,
                f"The e-mail to {user.email} failed. Give them this temporary password now; it is not shown "
                f"again: {shown_once}",
                messages.WARNING,
            )
        else:
            self.message_user(request, f"{user.email} was e-mailed a temporary password.", messages.SUCCESS)

    @admin.action(description="Reset password (temporary, to be changed at next sign-in)", permissions=["change"])
    def reset_staff_password(self, request, queryset):
        for user in queryset:
            try:
                shown_once = staff_password_reset(user=user, actor=request.user, request=request)
            except PermissionError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self._password_message(request, user, shown_once)

    def _set_active(self, request, queryset, active: bool):
        done, refused = [], []
        for user in queryset:
            try:
                staff_active_set(user=user, active=active, actor=request.user, request=request)
                done.append(user.email)
            except PermissionError as exc:
                refused.append(str(exc))
        _report(self, request, done, refused, "Reactivated" if active else "Deactivated")

    @admin.action(description="Deactivate (cannot sign in)", permissions=["change"])
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)

    @admin.action(description="Reactivate", permissions=["change"])
    def reactivate(self, request, queryset):
        self._set_active(request, queryset, True)


# --- Audit trail -----------------------------------------------------------------------------------------


class ActorFilter(admin.SimpleListFilter):
    title = "staff member"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        return [(u.pk, u.email) for u in StaffUser.objects.only("pk", "email")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(actor_id=self.value()) if self.value().isdigit() else queryset.none()


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is written by accounts.services.audit_record and never edited."""

    list_display = ["created_at", "event", "actor_email", "ip_address", "object_text", "path"]
    list_filter = ["event", ActorFilter, "created_at"]
    search_fields = ["actor_email", "ip_address", "path", "event"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    @admin.display(description="object")
    def object_text(self, event):
        detail = event.detail or {}
        return detail.get("object") or detail.get("user") or detail.get("store_id") or ""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
