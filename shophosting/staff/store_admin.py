"""The staff's Store page: the store with its jobs and last backup, a new customer and store (billing),
delete (billing tears it down and cancels), and the suspend/resume/retry jobs. It composes stores with
provisioning, backups and billing, all above stores, so it is registered from the composition root
(shophosting/admin.py); stores/admin.py keeps what needs stores alone (hosts)."""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Prefetch, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from accounts.services import audit_record
from backups.models import BackupRun, RunStatus
from backups.staging.models import StagingRun
from billing.exceptions import BILLING_FAILURES
from billing.models import Plan
from billing.services.staff_stores import staff_store_create, store_delete
from billing.services.subscriptions import LIVE_STORE_STATUSES
from provisioning.domains import store_domain_delete, store_domain_request, store_names_check, store_primary_change
from provisioning.exceptions import JobConflict
from provisioning.models import JobStep, ProvisioningJob
from provisioning.moves import MoveError, move_target_hosts, store_move_request
from provisioning.services import job_enqueue, store_hsts_change
from stores.exceptions import InvalidTransition
from stores.models import Host, Store, StoreEvent, StoreName
from stores.selectors import store_disk_usage
from stores.services import store_credentials


class StoreEventInline(admin.TabularInline):
    model = StoreEvent
    extra = 0
    can_delete = False
    readonly_fields = ["created_at", "old_status", "new_status", "actor", "note"]

    def has_add_permission(self, request, obj=None):
        return False


class StagingRunInline(admin.TabularInline):
    """A live store's staging operations (create, refresh, push, undo) with their jobs; read only."""

    model = StagingRun
    fk_name = "live"
    extra = 0
    can_delete = False
    fields = ["created_at", "kind", "scope", "tables", "status", "staging", "job", "backup_reference", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class StoreNameInline(admin.TabularInline):
    """The names the store answers on. Read-only here: the platform name is given once, and custom domains
    change through the Domains page (names_view), which calls the merchant's own services."""

    model = StoreName
    extra = 0
    can_delete = False
    fields = ["name", "kind", "status", "is_primary", "proof_domain", "proved_at", "checked_at", "status_message"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class StaffStoreForm(forms.Form):
    """A customer (new or existing, by e-mail) and their store, opened by staff."""

    email = forms.EmailField(help_text="An existing customer's address adds the store to their account.")
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    company = forms.CharField(max_length=200, required=False)
    plan = forms.ModelChoiceField(queryset=None)
    domain = forms.CharField(
        max_length=253,
        required=False,
        help_text="Optional: the customer's own domain, for example shop.example.com. It waits for its DNS proof "
        "(the store page shows the record); the store answers on its platform name at once.",
    )
    skip_payment = forms.BooleanField(
        required=False, help_text="Provision now without a Stripe checkout (a trial, a migration, a partner)."
    )
    reason = forms.CharField(
        required=False, max_length=500, help_text="Why payment is skipped; kept on the subscription and audited."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = Plan.objects.filter(active=True).order_by("platform", "display_order")

    def clean(self):
        data = super().clean()
        if data.get("skip_payment") and not (data.get("reason") or "").strip():
            self.add_error("reason", "Say why payment is skipped.")
        return data


class StoreMoveForm(forms.Form):
    host = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="Any host with room (the placement policy chooses)",
        help_text="Hosts that take new stores, with their free memory; the move checks the room again.",
    )

    def __init__(self, *args, store: Store, **kwargs):
        super().__init__(*args, **kwargs)
        hosts = move_target_hosts(store)
        self.fields["host"].queryset = Host.objects.filter(pk__in=[host.pk for host, _ in hosts])
        free = {host.pk: free_mb for host, free_mb in hosts}
        self.fields["host"].label_from_instance = lambda host: f"{host.name} ({free[host.pk]} MB free)"


class StaffDomainForm(forms.Form):
    domain = forms.CharField(max_length=253, help_text="The customer's domain, for example shop.example.com.")
    include_www = forms.BooleanField(required=False, initial=True, label="Also its www. alias")


class PoolListFilter(admin.SimpleListFilter):
    """The store list shows customers' stores unless asked: a warm pool stack's row (pooled, or deleted once
    claimed or removed: provisioning/README.md, "The warm pool") is the platform's own, listed with the pool."""

    title = "warm pool"
    parameter_name = "pool"

    def lookups(self, request, model_admin):
        return [("stacks", "Warm pool stacks"), ("all", "All")]

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Customers' stores",
        }
        for value, title in self.lookup_choices:
            yield {
                "selected": self.value() == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": title,
            }

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        if self.value() == "stacks":
            return queryset.filter(pool_stack__isnull=False)
        return queryset.filter(pool_stack__isnull=True)


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = [
        "domain",
        "customer",
        "plan",
        "status",
        "tls_status",
        "host",
        "port",
        "disk",
        "last_backup",
        "staging_of",
        "created_at",
    ]
    list_filter = [
        PoolListFilter,
        "status",
        "platform",
        "tls_status",
        "host",
        "plan",
        ("staging_of", admin.EmptyFieldListFilter),
    ]
    search_fields = ["domain", "customer__email", "customer__company", "site_title"]
    list_select_related = ["customer", "plan", "host", "staging_of"]
    # Newest first by the primary key, which the database reads backwards from its index: the model's
    # "-created_at" has no index, so every page sorted all the stores first (time grew with their number).
    ordering = ["-pk"]
    # A filtered list says "Show all" instead of counting every store a second time (a full scan per page).
    show_full_result_count = False
    # Status and placement change only through services (store_transition, store_place).
    readonly_fields = [
        "customer",
        "plan",
        "subscription",
        "platform",
        "domain",
        "status",
        "status_message",
        "host",
        "port",
        "live_domain",
        "staging_of",
        "tls_status",
        "tls_error",
        "tls_attempts",
        "tls_next_attempt_at",
        "disk_bytes",
        "disk_staging_bytes",
        "disk_measured_at",
        "disk_alert_percent",
        "created_at",
        "updated_at",
    ]
    exclude = ["credentials_encrypted"]
    inlines = [StoreNameInline, StagingRunInline, StoreEventInline]
    change_form_template = "admin/stores/store/change_form.html"
    actions = ["suspend", "resume", "retry"]

    def save_model(self, request, obj, form, change):
        """HSTS (its warning is the field's help text) changes through store_hsts_change, which rewrites the
        vhost in a job; the other fields save as usual."""
        hsts_changed = change and "hsts_enabled" in form.changed_data
        if hsts_changed:
            wanted, obj.hsts_enabled = obj.hsts_enabled, form.initial["hsts_enabled"]
        super().save_model(request, obj, form, change)
        if hsts_changed:
            try:
                store_hsts_change(store_id=obj.pk, enabled=wanted, actor=request.user)
            except (JobConflict, InvalidTransition) as exc:
                self.message_user(request, f"HSTS unchanged: {exc}", level="error")
            else:
                self.message_user(request, f"HSTS turned {'on' if wanted else 'off'}; the vhost is being rewritten.")

    @admin.display(description="disk", ordering="disk_bytes")
    def disk(self, store):
        """Used of the plan's allowance, as last measured; flagged from 80 %."""
        usage = store_disk_usage(store)
        if usage is None:
            return "–"
        text = f"{usage.used_gb} GB ({usage.percent}%)"
        if usage.staging_bytes:
            text += f"; of which staging: {usage.staging_gb} GB"
        return format_html('<strong style="color:#b91c1c">{}</strong>', text) if usage.state != "ok" else text

    def get_queryset(self, request):
        # The backup columns come from two subqueries, so the list stays one query however many stores.
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

    # --- permissions ------------------------------------------------------------------------------------

    def has_operate_permission(self, request, obj=None):
        return request.user.has_perm("stores.operate_store")

    def has_reveal_permission(self, request):
        return request.user.has_perm("stores.reveal_store_credentials")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting tears a stack down: one store at a time, confirmed
        return actions

    # --- detail page ------------------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not str(object_id).isdigit():
            return super().change_view(request, object_id, form_url, extra_context)  # the admin's "not found"
        jobs = (
            ProvisioningJob.objects.filter(store_id=object_id)
            .select_related("created_by")
            .prefetch_related(Prefetch("steps", queryset=JobStep.objects.order_by("order")))
            .order_by("-created_at", "-pk")[:20]
        )
        extra = {
            "jobs": jobs,
            "latest_job": jobs[0] if jobs else None,
            "can_operate": self.has_operate_permission(request),
            "can_reveal": self.has_reveal_permission(request),
            "can_delete": self.has_delete_permission(request),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        credentials = path(
            "<int:store_id>/credentials/",
            self.admin_site.admin_view(self.credentials_view),
            name="stores_store_credentials",
        )
        names = path("<int:store_id>/names/", self.admin_site.admin_view(self.names_view), name="stores_store_names")
        move = path("<int:store_id>/move/", self.admin_site.admin_view(self.move_view), name="stores_store_move")
        return [credentials, names, move, *super().get_urls()]

    def move_view(self, request, store_id: int):
        """Move the store to another host (provisioning/moves.py): a host with room that takes new stores, or
        the placement policy's pick; a refusal is shown as is and changes nothing."""
        if not self.has_operate_permission(request):
            raise PermissionDenied
        store = get_object_or_404(Store.objects.select_related("host"), pk=store_id)
        form = StoreMoveForm(request.POST or None, store=store)
        if request.method == "POST" and form.is_valid():
            target = form.cleaned_data["host"]
            try:
                move = store_move_request(store_id=store.pk, host_id=target.pk if target else None, actor=request.user)
            except MoveError as exc:
                form.add_error(None, str(exc))
            else:
                audit_record(event="store_move", request=request, store_id=store.pk, staff=True)
                self.message_user(
                    request,
                    f"Moving {store.domain} from {move.source_host.name} to {move.target_host.name} (job "
                    f"#{move.job_id}); "
                    + (
                        "it stays suspended, stopped, throughout."
                        if store.status == store.Status.SUSPENDED
                        else "it keeps answering except for a short switch window."
                    ),
                    messages.SUCCESS,
                )
                return redirect("admin:stores_store_change", store.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Move {store.domain} to another host",
            "intro": f"It runs on {store.host.name if store.host else 'no host'} now.",
            "opts": self.opts,
            "form": form,
            "submit_label": "Move",
        }
        return TemplateResponse(request, "admin/staff/form_page.html", context)

    def names_view(self, request, store_id: int):
        """The store's names, and for staff with operate_store the merchant's own operations on them: add a
        custom domain (with its www. alias), check the proof now, choose the primary name, remove one."""
        if not self.has_operate_permission(request):
            raise PermissionDenied
        store = get_object_or_404(Store, pk=store_id)
        form = StaffDomainForm(request.POST if request.POST.get("action") == "add" else None)
        if request.method == "POST":
            action, name_id = request.POST.get("action"), request.POST.get("name", "")
            try:
                if action == "add" and form.is_valid():
                    rows = store_domain_request(
                        store_id=store.pk,
                        domain=form.cleaned_data["domain"],
                        include_www=form.cleaned_data["include_www"],
                        actor=request.user,
                    )
                    self.message_user(request, f"Added {' and '.join(r.name for r in rows)}, waiting for proof.")
                elif action == "check":
                    activated = store_names_check(store_id=store.pk, actor=request.user)
                    self.message_user(
                        request, f"Proven: {', '.join(activated)}." if activated else "Nothing proven yet."
                    )
                elif action == "primary" and name_id.isdigit():
                    store_primary_change(store_id=store.pk, name_id=int(name_id), actor=request.user)
                    self.message_user(request, "The primary name is changing (a job restarts the store with it).")
                elif action == "remove" and name_id.isdigit():
                    store_domain_delete(store_id=store.pk, name_id=int(name_id), actor=request.user)
                    self.message_user(request, "Removed.")
                elif action != "add":
                    raise ValidationError("Unknown operation.")
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            except (JobConflict, InvalidTransition) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                if action != "add" or form.is_valid():
                    audit_record(event=f"store_domain_{action}", request=request, store_id=store.pk, staff=True)
                    return redirect("admin:stores_store_names", store.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Domains of {store.domain}",
            "opts": self.opts,
            "store": store,
            "names": store.names.all(),
            "form": form,
        }
        return TemplateResponse(request, "admin/stores/store/names.html", context)

    def credentials_view(self, request, store_id: int):
        """Shown only after a POST (admin_view makes it uncached), and every reveal is audited."""
        if not self.has_reveal_permission(request):
            raise PermissionDenied
        store = get_object_or_404(Store, pk=store_id)
        if request.method != "POST":
            return redirect("admin:stores_store_change", store.pk)
        audit_record(event="credentials_revealed", request=request, store_id=store.pk, staff=True)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Credentials of {store.domain}",
            "opts": self.opts,
            "store": store,
            "credentials": store_credentials(store),
        }
        return TemplateResponse(request, "admin/stores/store/credentials.html", context)

    # --- new customer and store -------------------------------------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StaffStoreForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                order = staff_store_create(
                    email=data["email"],
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    company=data["company"],
                    plan=data["plan"],
                    domain=data["domain"],
                    skip_payment=data["skip_payment"],
                    reason=data["reason"],
                    actor=request.user,
                )
            except ValidationError as exc:
                form.add_error("domain", exc)
            except BILLING_FAILURES as exc:
                form.add_error(None, str(exc))
            else:
                audit_record(
                    event="store_created_by_staff",
                    request=request,
                    store_id=order.store.pk,
                    customer=order.subscription.customer.email,
                    customer_created=order.customer_created,
                    skip_payment=data["skip_payment"],
                    reason=data["reason"],
                )
                note = order.payment_note or "the customer was e-mailed a payment link"
                self.message_user(request, f"{order.store.domain} is created ({note}).", messages.SUCCESS)
                return redirect("admin:stores_store_change", order.store.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "New customer and store",
            "opts": self.opts,
            "form": form,
            "submit_label": "Create",
            "intro": "Creates the customer (or uses the existing one) and the store. With payment skipped, "
            "provisioning starts at once; otherwise the customer is e-mailed a checkout link.",
        }
        return TemplateResponse(request, "admin/staff/form_page.html", context)

    # --- delete: tear down and cancel billing -----------------------------------------------------------

    def delete_view(self, request, object_id, extra_context=None):
        if not str(object_id).isdigit():
            raise Http404("No such store.")
        store = get_object_or_404(Store.objects.select_related("customer", "subscription", "plan"), pk=object_id)
        if not self.has_delete_permission(request, store):
            raise PermissionDenied
        if request.method == "POST" and request.POST.get("confirm") == store.domain:
            try:
                job = store_delete(store_id=store.pk, actor=request.user)
            except BILLING_FAILURES as exc:
                self.message_user(request, f"Nothing was deleted: Stripe said: {exc}", messages.ERROR)
            except (JobConflict, InvalidTransition) as exc:
                self.message_user(request, f"Not deleted: {exc}", messages.ERROR)
            else:
                audit_record(event="store_delete_requested", request=request, store_id=store.pk, job_id=job.pk)
                self.message_user(request, f"{store.domain} is being torn down (job #{job.pk}).", messages.SUCCESS)
                return redirect("admin:stores_store_change", store.pk)
            return redirect("admin:stores_store_delete", store.pk)
        other_stores = (
            store.subscription.stores.filter(status__in=LIVE_STORE_STATUSES).exclude(pk=store.pk).count()
            if store.subscription
            else 0
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Delete {store.domain}",
            "opts": self.opts,
            "store": store,
            "other_stores": other_stores,
            "cancels_subscription": store.subscription is not None and other_stores == 0,
            "wrong_confirmation": request.method == "POST",
        }
        return TemplateResponse(request, "admin/stores/store/delete_confirmation.html", context)

    # --- bulk operations --------------------------------------------------------------------------------

    def _enqueue_each(self, request, queryset, kind: str, label: str):
        started, refused = [], []
        for store in queryset:
            try:
                job_enqueue(store_id=store.pk, kind=kind, actor=request.user)
                started.append(store.domain)
            except (JobConflict, InvalidTransition) as exc:
                refused.append(f"{store.domain}: {exc}")
        if started:
            self.message_user(request, f"{label} queued for {', '.join(started)}.", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)

    @admin.action(description="Suspend (stop the containers, show the maintenance page)", permissions=["operate"])
    def suspend(self, request, queryset):
        self._enqueue_each(request, queryset, "suspend", "Suspend")

    @admin.action(description="Resume", permissions=["operate"])
    def resume(self, request, queryset):
        self._enqueue_each(request, queryset, "resume", "Resume")

    @admin.action(description="Retry failed provisioning", permissions=["operate"])
    def retry(self, request, queryset):
        self._enqueue_each(request, queryset, "retry", "Retry")
