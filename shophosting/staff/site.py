"""The staff admin: Django's admin site with the operations dashboard as its index, the health and log pages,
and an audit trail of everything staff change through it."""

import threading
from functools import update_wrapper

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import get_script_prefix, path
from django.utils.html import format_html
from django.utils.translation import get_language, gettext

from accounts.services import audit_record
from shophosting.staff import views
from shophosting.staff.selectors import dashboard, dashboard_live_changed


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


class PlainActionCheckboxMixin:
    """Each changelist row's action checkbox as the same HTML Django's widget renders, without the widget.
    Django renders it through the form renderer's templates, about half a millisecond a row: half of what a
    100-row store list cost to render (tests/benchmarks/pages.py)."""

    def action_checkbox(self, obj):
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            ACTION_CHECKBOX_NAME,
            obj.pk,
            format_html(gettext("Select this object for an action - {}"), str(obj)),
        )


# dj-stripe mirrors what Stripe holds. Staff read the parts that explain a merchant's bill; the rest (Connect
# accounts, payouts, transfers, tax codes, API keys kept in settings...) is never used here and is not registered.
STRIPE_MIRROR_APP = "djstripe"
STRIPE_MIRROR_SHOWN = frozenset(
    {
        "customer",
        "subscription",
        "invoice",
        "charge",
        "paymentintent",
        "refund",
        "dispute",
        "price",
        "product",
        "coupon",
        "event",
        "webhookeventtrigger",
        "webhookendpoint",
    }
)
# Admins staff never open: role Groups are defined in code (accounts/roles.py, kept by migrations), and
# recovery codes are issued and reset through the staff user's 2FA actions.
HIDDEN_MODELS = frozenset({"auth.group", "otp_static.staticdevice"})
# The app list after the operations panels: what staff work with first, the Stripe mirror last.
APP_ORDER = ("stores", "provisioning", "backups", "consultations", "accounts", "billing")


class StripeMirrorReadOnlyMixin:
    """The Stripe mirror is read-only for everyone, super admins included: a local edit would be overwritten by
    the next webhook, and dj-stripe's actions (cancel a subscription, sync) would reach Stripe with no role
    check of ours (its action page checks only is_staff). Changes go through Stripe or our billing actions."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}

    def get_urls(self):
        return [url for url in super().get_urls() if getattr(url, "name", None) != "djstripe_custom_action"]


# Requests that change nothing (RFC 9110's safe methods); any other through the staff site may have.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# App lists kept per process (StaffAdminSite.get_app_list): one per role and page kind in practice.
APP_LISTS_KEPT = 256


def _permissions_key(user) -> tuple:
    """What a staff member's app list follows from: an active super admin has every permission; anyone else
    the set of their own and their groups' permissions (loaded once per request by Django anyway)."""
    if user.is_active and user.is_superuser:
        return ("superuser",)
    return ("permissions", user.is_active, user.is_staff, frozenset(user.get_all_permissions()))


class StaffAdminSite(admin.AdminSite):
    site_header = "ShopHosting staff"
    site_title = "ShopHosting staff"
    index_title = "Operations"
    index_template = "admin/staff_index.html"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._app_lists: dict = {}
        self._app_lists_lock = threading.Lock()

    def register(self, model_or_iterable, admin_class=None, **options):
        models = [model_or_iterable] if isinstance(model_or_iterable, type) else list(model_or_iterable)
        models = [model for model in models if self._offered(model)]
        if not models:
            return
        admin_class = admin_class or admin.ModelAdmin
        mixins = [AuditedAdminMixin] if not issubclass(admin_class, AuditedAdminMixin) else []
        if not issubclass(admin_class, PlainActionCheckboxMixin):
            mixins.append(PlainActionCheckboxMixin)
        if models[0]._meta.app_label == STRIPE_MIRROR_APP and not issubclass(admin_class, StripeMirrorReadOnlyMixin):
            mixins.insert(0, StripeMirrorReadOnlyMixin)
        if mixins:
            admin_class = type(admin_class.__name__, (*mixins, admin_class), {"__module__": admin_class.__module__})
        super().register(models, admin_class, **options)

    @staticmethod
    def _offered(model) -> bool:
        if model._meta.app_label == STRIPE_MIRROR_APP:
            return model._meta.model_name in STRIPE_MIRROR_SHOWN
        return model._meta.label_lower not in HIDDEN_MODELS

    def get_app_list(self, request, app_label=None):
        """Our apps in the order staff work with them, third-party ones after, the Stripe mirror last under
        one heading that says it is read-only.

        Built once per process for each set of permissions (and app, language, URL prefix), not on every page:
        a build checks some 200 permissions and reverses 80 URLs (7 ms), and what it yields follows only from
        the registered models, which change with the code, and from the user's permissions, which are the key
        (the ModelAdmins' has_*_permission answer from permissions alone, or constants). Read-only for callers.
        """
        built = request.__dict__.setdefault("_staff_app_lists", {})
        if app_label not in built:
            key = (_permissions_key(request.user), app_label, get_language(), get_script_prefix())
            with self._app_lists_lock:
                app_list = self._app_lists.get(key)
            if app_list is None:
                app_list = self._app_list_build(request, app_label)
                with self._app_lists_lock:
                    if len(self._app_lists) >= APP_LISTS_KEPT:
                        self._app_lists.clear()
                    self._app_lists[key] = app_list
            built[app_label] = app_list
        return built[app_label]

    def _app_list_build(self, request, app_label):
        apps = super().get_app_list(request, app_label)

        def rank(app):
            label = app["app_label"]
            if label == STRIPE_MIRROR_APP:
                return (2, 0, "")
            return (0, APP_ORDER.index(label), "") if label in APP_ORDER else (1, 0, app["name"])

        for app in apps:
            if app["app_label"] == STRIPE_MIRROR_APP:
                app["name"] = "Stripe mirror (read-only: change it in Stripe or through billing actions)"
        return sorted(apps, key=rank)

    def admin_view(self, view, cacheable=False):
        """Django's wrapper (staff sign-in, CSRF, no caching), and after any request that may have changed
        something (every add, change, deletion, action and quick action is a POST through here), the live part
        kept for the index is marked stale: the next view of the index reads it afresh."""
        wrapped = super().admin_view(view, cacheable)

        def inner(request, *args, **kwargs):
            try:
                return wrapped(request, *args, **kwargs)
            finally:  # also when the view failed after something committed
                # Only staff change anything here: anyone else's POST is sent to the login page, and must not
                # be a way to keep the index from being cached.
                if request.method not in SAFE_METHODS and self.has_permission(request):
                    dashboard_live_changed()

        return update_wrapper(inner, wrapped)

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
