"""The staff admin: Django's admin site with the operations dashboard as its index, the health and log pages,
and an audit trail of everything staff change through it."""

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import path

from accounts.services import audit_record
from shophosting.staff import views
from shophosting.staff.selectors import dashboard


def _audit_object(request, event: str, obj, **detail) -> None:
    audit_record(
        event=event,
        request=request,
        model=obj._meta.label_lower,
        object_id=str(obj.pk),
        object=str(obj)[:200],
        **detail,
    )


class AuditedAdminMixin:
    """Every add, change, deletion and action made through a ModelAdmin writes an AuditEvent (actor, IP,
    object). StaffAdminSite mixes this into every ModelAdmin registered on it, third-party ones included."""

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        _audit_object(request, "admin_add", obj, change=message)
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        _audit_object(request, "admin_change", obj, change=message)
        return entry

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            _audit_object(request, "admin_delete", obj)
        return entries

    def response_action(self, request, queryset):
        action = request.POST.get("action", "")
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        response = super().response_action(request, queryset)
        # Deletions are audited object by object, once confirmed; an action that raised was refused.
        if selected and action in self.get_actions(request) and action != "delete_selected":
            audit_record(
                event="admin_action",
                request=request,
                model=self.model._meta.label_lower,
                action=action,
                object_ids=selected[:500],
            )
        return response


class StaffAdminSite(admin.AdminSite):
    site_header = "ShopHosting staff"
    site_title = "ShopHosting staff"
    index_title = "Operations"
    index_template = "admin/staff_index.html"

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, AuditedAdminMixin):
            admin_class = type(
                admin_class.__name__, (AuditedAdminMixin, admin_class), {"__module__": admin_class.__module__}
            )
        super().register(model_or_iterable, admin_class, **options)

    def index(self, request, extra_context=None):
        return super().index(request, {"dashboard": dashboard(request.user), **(extra_context or {})})

    def get_urls(self):
        def staff_view(view, name, route):
            return path(f"operations/{route}", self.admin_view(view), name=name)

        return [
            staff_view(views.system_health_view, "system_health", "health/"),
            staff_view(views.logs_view, "logs", "logs/"),
            staff_view(views.system_backup_run_view, "system_backup_run", "system-backup/"),
            staff_view(views.rq_failed_clear_view, "rq_failed_clear", "rq-failed-clear/"),
            staff_view(views.job_retry_view, "job_retry", "jobs/<int:job_id>/retry/"),
            staff_view(views.store_operate_view, "store_operate", "stores/operate/"),
            *super().get_urls(),
        ]
