from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from provisioning.exceptions import HostCheckFailed, JobConflict, ProvisioningError
from provisioning.host_images import host_images_refresh, hosts_images_state
from provisioning.hosts import host_check, host_check_enqueue
from provisioning.models import (
    Incident,
    IncidentEvent,
    JobLogLine,
    JobStep,
    PoolStack,
    PoolTarget,
    ProvisioningJob,
    Rollout,
    RolloutStore,
)
from provisioning.move_models import HostEvacuation, StoreMove
from provisioning.moves import evacuation_progress, host_maintenance_start
from provisioning.pool import platform_poolable, pool_counts
from provisioning.rollouts import (
    MAX_BATCH_SIZE,
    ROLLOUT_STORE_STATUSES,
    rollout_cancel,
    rollout_create,
    rollout_resume,
)
from provisioning.selectors import job_progress_for_staff, rollout_progress
from provisioning.services import job_retry
from stores.exceptions import InvalidTransition
from stores.models import Engine, Host, Platform, Store
from stores.selectors import HOLDS_RESOURCES
from stores.services import host_save, host_transition


class JobStepInline(admin.TabularInline):
    model = JobStep
    extra = 0
    can_delete = False
    fields = ["order", "title", "status", "started_at", "finished_at", "duration", "log_tail"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="seconds")
    def duration(self, step):
        return f"{step.duration_seconds:.1f}" if step.duration_seconds is not None else "–"

    @admin.display(description="log")
    def log_tail(self, step):
        lines = list(JobLogLine.objects.filter(step=step).order_by("-id").values_list("message", flat=True)[:5])
        return "\n".join(reversed(lines))


@admin.register(ProvisioningJob)
class ProvisioningJobAdmin(admin.ModelAdmin):
    list_display = ["id", "store", "kind", "status", "path", "failed_step", "created_by", "created_at", "duration"]
    list_filter = ["status", "kind", "created_at"]
    search_fields = ["store__domain", "rq_job_id"]
    list_select_related = ["store", "created_by"]
    actions = ["retry"]
    readonly_fields = [
        "store",
        "kind",
        "status",
        "rq_job_id",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "timeout_seconds",
        "path",
        "error",
        "reaped_at",
        "undo_of",
        "put_back_by",
    ]
    inlines = [JobStepInline]
    # Adds the live checklist and log tail, polled from progress_view while the job runs.
    change_form_template = "admin/provisioning/provisioningjob/change_form.html"

    def get_queryset(self, request):
        failed = JobStep.objects.filter(job=OuterRef("pk"), status=JobStep.Status.FAILED).values("title")[:1]
        return super().get_queryset(request).annotate(failed_step_title=Subquery(failed))

    @admin.display(description="failed at", ordering="failed_step_title")
    def failed_step(self, job):
        return job.failed_step_title or ""

    @admin.display(description="put back by")
    def put_back_by(self, job):
        """The `undo` jobs the reaper (or a retry) queued for this reaped job (provisioning/undo.py)."""
        undos = [f"#{undo.pk} ({undo.get_status_display().lower()})" for undo in job.undo_jobs.order_by("pk")]
        return ", ".join(undos) or "–"

    @admin.display(description="seconds")
    def duration(self, job):
        if job.started_at and job.finished_at:
            return f"{(job.finished_at - job.started_at).total_seconds():.1f}"
        return "–"

    def has_add_permission(self, request):
        return False

    def has_operate_permission(self, request, obj=None):
        return request.user.has_perm("stores.operate_store")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the job history is the record of what happened to a store
        return actions

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_operate": self.has_operate_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    @admin.action(description="Retry (run the failed jobs again)", permissions=["operate"])
    def retry(self, request, queryset):
        for job in queryset:
            try:
                new = job_retry(job_id=job.pk, actor=request.user)
            except (JobConflict, InvalidTransition) as exc:
                self.message_user(request, f"Job #{job.pk} not retried: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Job #{job.pk} runs again as job #{new.pk}.", messages.SUCCESS)

    def get_urls(self):
        progress = path(
            "<int:job_id>/progress.json",
            self.admin_site.admin_view(self.progress_view),
            name="provisioning_provisioningjob_progress",
        )
        return [progress, *super().get_urls()]

    def progress_view(self, request, job_id: int):
        if not self.has_view_permission(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        job = get_object_or_404(ProvisioningJob.objects.select_related("store"), pk=job_id)
        store = job.store
        return JsonResponse(
            {
                "store": {"status": store.status, "status_display": store.get_status_display(), "message": job.error},
                "progress": job_progress_for_staff(job),
            }
        )


# --- Rollouts ---------------------------------------------------------------------------------------------


class RolloutForm(forms.Form):
    """A new web image for all stores of a platform, or for chosen ones, in batches."""

    platform = forms.ChoiceField(choices=Platform.choices)
    image = forms.CharField(
        max_length=255,
        help_text="The web image every chosen store is updated to, e.g. shophosting/wordpress-official:6.5. It must"
        " already be on the engine of every host of those stores (images_build --production builds it there).",
    )
    all_stores = forms.BooleanField(
        required=False, label="All stores of the platform", help_text="Every active or suspended store of it."
    )
    stores = forms.ModelMultipleChoiceField(
        queryset=Store.objects.none(), required=False, help_text="Or choose the stores (hold Ctrl to choose more)."
    )
    batch_size = forms.IntegerField(
        min_value=1,
        max_value=MAX_BATCH_SIZE,
        initial=5,
        help_text="Stores updated at a time; the next batch starts when every update of this one has ended.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stores"].queryset = Store.objects.filter(status__in=ROLLOUT_STORE_STATUSES).order_by("domain")

    def clean(self):
        data = super().clean()
        if data.get("all_stores") and data.get("stores"):
            raise forms.ValidationError("Either all stores of the platform, or a choice of stores: not both.")
        return data


class RolloutStoreInline(admin.TabularInline):
    model = RolloutStore
    extra = 0
    can_delete = False
    fields = ["position", "store_link", "status", "job_link", "reason"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="store")
    def store_link(self, target):
        url = reverse("admin:stores_store_change", args=[target.store_id])
        return format_html('<a href="{}">{}</a>', url, target.store.domain)

    @admin.display(description="job")
    def job_link(self, target):
        if target.update_id is None:
            return "–"
        url = reverse("admin:provisioning_provisioningjob_change", args=[target.update.job_id])
        return format_html('<a href="{}">job #{}</a>', url, target.update.job_id)


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "platform", "status", "progress", "batch_size", "created_by", "created_at"]
    list_filter = ["status", "platform"]
    search_fields = ["image"]
    readonly_fields = [
        "platform",
        "role",
        "image",
        "batch_size",
        "status",
        "progress",
        "status_note",
        "created_by",
        "created_at",
        "updated_at",
    ]
    inlines = [RolloutStoreInline]
    actions = ["resume", "cancel"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").prefetch_related("targets")

    @admin.display(description="progress")
    def progress(self, rollout):
        counts = rollout_progress(rollout)
        return ", ".join(f"{count} {label}" for label, count in counts.items())

    def has_operate_permission(self, request, obj=None):
        return request.user.has_perm("provisioning.operate_rollout")

    def has_add_permission(self, request):
        return self.has_operate_permission(request)

    def has_change_permission(self, request, obj=None):
        return False  # a rollout moves only through its services (resume, cancel, its updates' ends)

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what happened to the stores

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RolloutForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                rollout = rollout_create(
                    platform=data["platform"],
                    image=data["image"],
                    batch_size=data["batch_size"],
                    store_ids=None if data["all_stores"] else [store.pk for store in data["stores"]],
                    actor=request.user,
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                self.log_addition(request, rollout, f"rollout of {rollout.image}")
                self.message_user(
                    request, f"Rollout #{rollout.pk} of {rollout.image} started: its first batch is queued."
                )
                return redirect("admin:provisioning_rollout_change", rollout.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Roll out a new image",
            "opts": self.opts,
            "form": form,
            "submit_label": "Start the rollout",
            "intro": "Each store gets an update job: a backup first, then the new image, the application's own "
            "upgrade and checks of its pages; a store that fails them is put back on its old image and data, "
            "and the rollout pauses there.",
        }
        return TemplateResponse(request, "admin/staff/form_page.html", context)

    @admin.action(description="Resume (queue the next batch)", permissions=["operate"])
    def resume(self, request, queryset):
        self._each(request, queryset, rollout_resume, "resumed")

    @admin.action(description="Cancel (no further store is updated)", permissions=["operate"])
    def cancel(self, request, queryset):
        self._each(request, queryset, rollout_cancel, "cancelled")

    def _each(self, request, queryset, service, done: str):
        for rollout in queryset:
            try:
                service(rollout_id=rollout.pk, actor=request.user)
            except InvalidTransition:
                self.message_user(
                    request,
                    f"Rollout #{rollout.pk} is {rollout.get_status_display().lower()}: not {done}.",
                    messages.ERROR,
                )
            else:
                self.message_user(request, f"Rollout #{rollout.pk} {done}.", messages.SUCCESS)


# --- Store care -------------------------------------------------------------------------------------------


class IncidentEventInline(admin.TabularInline):
    model = IncidentEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "old_status", "new_status", "note"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Read-only: incidents open and close only from check rounds (provisioning.care.services)."""

    list_display = ["pk", "store", "component", "status", "checks", "affects_uptime", "opened_at", "closed_at"]
    list_filter = ["status", "affects_uptime", "component"]
    search_fields = ["store__domain", "component", "summary"]
    list_select_related = ["store"]
    fields = ["store", "component", "status", "checks", "summary", "affects_uptime", "opened_at", "closed_at"]
    readonly_fields = fields
    inlines = [IncidentEventInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _pem_check(key: str, text: str) -> None:
    """Refuse what is not a PEM certificate (or an unencrypted PEM key) before anything is dialled."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        if key == "key":
            serialization.load_pem_private_key(text.encode(), password=None)
        else:
            x509.load_pem_x509_certificate(text.encode())
    except (ValueError, TypeError) as exc:
        what = "an unencrypted PEM private key" if key == "key" else "a PEM certificate"
        raise ValidationError({f"tls_{key}": f"This is not {what}: {exc}"}) from exc


def _ssh_check(key: str, known_hosts: str) -> None:
    """Refuse what is not an unencrypted OpenSSH private key, or known_hosts lines with a host key each."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_ssh_private_key(key.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValidationError({"ssh_key": f"This is not an unencrypted OpenSSH private key: {exc}"}) from exc
    lines = [line for line in known_hosts.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ValidationError(
            {"ssh_known_hosts": "Give the host's key as known_hosts lines (ssh-keyscan prints them)."}
        )
    for line in lines:
        fields = line.split()
        try:
            if len(fields) < 3 or fields[0].startswith("@"):
                raise ValueError("expected: host key-type base64-key")
            serialization.load_ssh_public_key(f"{fields[1]} {fields[2]}".encode())
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValidationError({"ssh_known_hosts": f"Not a known_hosts line ({line[:60]}): {exc}"}) from exc


class HostForm(forms.ModelForm):
    """A host with its TLS client certificates or its SSH key and pinned host key (write-only: never shown
    again, stored encrypted). Saving a new
    host, or one whose engine URL, private address or certificates changed, first runs the host check
    (provisioning/hosts.py): a host that fails it is not saved, and the error says why."""

    tls_ca = forms.CharField(
        label="CA certificate (PEM)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="For tcp:// with --tlsverify: the CA that signed the engine's certificate and ours.",
    )
    tls_cert = forms.CharField(
        label="Client certificate (PEM)", required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    tls_key = forms.CharField(
        label="Client key (PEM)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Stored encrypted; never shown. Leave the three empty to keep the certificates the host has.",
    )
    tls_clear = forms.BooleanField(label="Remove the TLS certificates", required=False)
    ssh_key = forms.CharField(
        label="SSH private key (OpenSSH)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=(
            "For ssh://user@host: a key of its own for the platform (unencrypted), whose user may run docker on "
            "the host. Stored encrypted; never shown. Leave both empty to keep what the host has."
        ),
    )
    ssh_known_hosts = forms.CharField(
        label="Host key (known_hosts lines)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The host's own SSH key, pinned: `ssh-keyscan -p PORT HOST` on a trusted path, checked by hand.",
    )

    class Meta:
        model = Host
        fields = [
            "name",
            "docker_url",
            "bind_address",
            "port_range_start",
            "port_range_end",
            "memory_capacity_mb",
            "cpu_capacity",
            "disk_capacity_gb",
            "active",
            "job_slots",
        ]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # PEM text as files hold it (the form strips the last newline, a browser may send \r\n).
        pems = {key: (cleaned.get(f"tls_{key}") or "").replace("\r\n", "\n").strip() for key in ("ca", "cert", "key")}
        pems = {key: f"{value}\n" if value else "" for key, value in pems.items()}
        given = [key for key, value in pems.items() if value]
        if given and len(given) != 3:
            raise ValidationError("Give the CA certificate, the client certificate and the client key together.")
        for key in given:
            _pem_check(key, pems[key])
        url = cleaned["docker_url"]
        self.tls = {"ca": pems["ca"], "cert": pems["cert"], "key": pems["key"]} if given else None
        if cleaned.get("tls_clear"):
            self.tls = {}
        ssh_key = (cleaned.get("ssh_key") or "").replace("\r\n", "\n").strip()
        known_hosts = (cleaned.get("ssh_known_hosts") or "").replace("\r\n", "\n").strip()
        self.ssh = None
        if ssh_key or known_hosts:
            if not (ssh_key and known_hosts):
                raise ValidationError("Give the SSH private key and the host key together.")
            _ssh_check(ssh_key, known_hosts)
            self.ssh = {"key": ssh_key + "\n", "known_hosts": known_hosts + "\n"}
        kept = self.instance.engine if self.instance.pk else None
        engine = Engine(
            url=url,
            ca_pem=(self.tls or {}).get("ca", kept.ca_pem if kept and self.tls is None else ""),
            cert_pem=(self.tls or {}).get("cert", kept.cert_pem if kept and self.tls is None else ""),
            key_pem=(self.tls or {}).get("key", kept.key_pem if kept and self.tls is None else ""),
            ssh_key=(self.ssh or {}).get("key", kept.ssh_key if kept else ""),
            ssh_known_hosts=(self.ssh or {}).get("known_hosts", kept.ssh_known_hosts if kept else ""),
        )
        if engine.uses_tls and not url.startswith("tcp://"):
            raise ValidationError({"docker_url": "TLS certificates go with a tcp:// engine URL only."})
        if self.ssh is not None and not url.startswith("ssh://"):
            raise ValidationError({"docker_url": "An SSH key goes with an ssh:// engine URL only."})
        if url.startswith("ssh://") and not (engine.ssh_key and engine.ssh_known_hosts):
            raise ValidationError(
                {"ssh_key": "An ssh:// engine needs the platform's SSH key and the host's key (known_hosts lines)."}
            )
        changed = {"docker_url", "bind_address"} & set(self.changed_data)
        self.check = None
        if not self.instance.pk or changed or self.tls is not None or self.ssh is not None:
            try:
                self.check = host_check(engine=engine, bind_address=cleaned["bind_address"])
            except HostCheckFailed as exc:
                raise ValidationError(f"The host check failed, nothing was saved: {exc}") from exc
        return cleaned


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    form = HostForm
    list_display = [
        "name",
        "docker_url",
        "bind_address",
        "status",
        "active",
        "memory_capacity_mb",
        "cpu_capacity",
        "disk_capacity_gb",
        "engine_version",
        "checked_at",
        "stores_held",
        "jobs_now",
        "images_current",
    ]
    list_filter = ["active", "status"]
    readonly_fields = [
        "status",
        "jobs_now",
        "images_current",
        "images_recorded",
        "evacuation",
        "tls_state",
        "ssh_state",
        "checked_at",
        "engine_version",
        "storage_driver",
        "cgroup_limits",
        "memory_total_mb",
        "cpus_total",
        "disk_free",
        "check_report",
        "check_error",
    ]
    actions = ["drain_selected", "maintenance_selected", "ready_selected", "check_selected"]

    def get_fieldsets(self, request, obj=None):
        main = [
            "name",
            "docker_url",
            "bind_address",
            ("port_range_start", "port_range_end"),
            ("memory_capacity_mb", "cpu_capacity", "disk_capacity_gb"),
            "active",
            "status",
            "job_slots",
            "evacuation",
        ]
        if obj is not None:
            main += ["jobs_now"]
        return [
            (None, {"fields": main}),
            (
                "TLS client certificates (tcp://)",
                {"fields": ["tls_state", "tls_ca", "tls_cert", "tls_key", "tls_clear"]},
            ),
            ("SSH (ssh://)", {"fields": ["ssh_state", "ssh_key", "ssh_known_hosts"]}),
            (
                "What the host check found",
                {
                    "fields": [
                        "checked_at",
                        "engine_version",
                        "storage_driver",
                        "cgroup_limits",
                        ("memory_total_mb", "cpus_total"),
                        "disk_free",
                        "check_report",
                        "check_error",
                    ]
                },
            ),
            *([("Images on this host", {"fields": ["images_current", "images_recorded"]})] if obj is not None else []),
        ]

    def get_queryset(self, request):
        # The list's job and store columns in the list's own query: one grouped join, whatever the hosts.
        jobs = "stores__jobs__status"
        return (
            super()
            .get_queryset(request)
            .annotate(
                stores_count=Count("stores", filter=Q(stores__status__in=HOLDS_RESOURCES), distinct=True),
                jobs_running=Count("stores__jobs", filter=Q(**{jobs: ProvisioningJob.Status.RUNNING})),
                jobs_queued=Count("stores__jobs", filter=Q(**{jobs: ProvisioningJob.Status.QUEUED})),
                jobs_waiting=Count(
                    "stores__jobs",
                    filter=Q(**{jobs: ProvisioningJob.Status.QUEUED}, stores__jobs__host_waits__gt=0),
                ),
            )
        )

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        states = hosts_images_state(changelist.result_list)  # one query for the page's hosts
        for host in changelist.result_list:  # the page iterates this same (cached) list
            host.images_state = states[host.pk]
        return changelist

    @admin.display(description="stores")
    def stores_held(self, host):
        return host.stores_count

    @admin.display(description="jobs: running / slots, queued (waiting for a slot)")
    def jobs_now(self, host):
        return (
            f"{host.jobs_running} / {host.job_slots_effective} running, {host.jobs_queued} queued"
            f" ({host.jobs_waiting} waiting for a slot)"
        )

    @admin.display(description="has current images")
    def images_current(self, host):
        state = getattr(host, "images_state", None) or hosts_images_state([host])[host.pk]
        return str(state)

    @admin.display(description="images recorded")
    def images_recorded(self, host):
        rows = host.images.order_by("reference")
        if not rows:
            return "none recorded yet (the host check, host_images_copy and the platform round record them)"
        return format_html_join(
            "\n",
            "<div>{} <code>{}</code> built {}, seen {}</div>",
            (
                (
                    row.reference,
                    row.image_id.removeprefix("sha256:")[:12],
                    f"{row.created:%Y-%m-%d %H:%M}" if row.created else "?",
                    f"{row.recorded_at:%Y-%m-%d %H:%M}",
                )
                for row in rows
            ),
        )

    @admin.display(description="TLS")
    def tls_state(self, host):
        return "client certificates stored (encrypted)" if host.tls_encrypted else "none"

    @admin.display(description="SSH")
    def ssh_state(self, host):
        return "key and pinned host key stored (encrypted)" if host.ssh_encrypted else "none"

    @admin.display(description="disk free")
    def disk_free(self, host):
        if host.disk_free_bytes is None:
            return "–"
        return f"{host.disk_free_bytes / 1e9:.1f} of {host.disk_total_bytes / 1e9:.1f} GB"

    def save_model(self, request, obj, form, change):
        if form.check is None:  # nothing the check looks at changed: capacity, ranges, the flag
            obj.save()
            return
        host_save(host=obj, tls=form.tls, ssh=form.ssh, check=form.check)
        self._images_record(request, obj)

    def _images_record(self, request, host):
        """After a host check: what the engine holds now (the check may just have copied its probe image)."""
        try:
            host_images_refresh(host=host)
        except ProvisioningError as exc:
            self.message_user(request, f"{host}: its images were not recorded: {exc}", messages.WARNING)

    @admin.action(description="Drain: no new stores on the selected hosts")
    def drain_selected(self, request, queryset):
        for host in queryset:
            host_transition(host_id=host.pk, to=Host.Status.DRAINING, actor=request.user, note="drained in the admin")
        self.message_user(request, f"{queryset.count()} host(s) draining: no new store will be placed there.")

    @admin.display(description="stores moved off")
    def evacuation(self, host):
        """The latest evacuation's progress (provisioning/moves.py): moved, failed, remaining, moving now."""
        evacuation = host.evacuations.first() if host.pk else None
        if evacuation is None:
            return "–"
        counts = evacuation_progress(evacuation)
        current = f"; moving now: {counts['current'].domain}" if counts["current"] else ""
        return (
            f"{evacuation.get_status_display()} (since {evacuation.created_at:%Y-%m-%d %H:%M} UTC): "
            f"{counts['moved']} moved, {counts['failed']} failed, {counts['remaining']} remaining{current}"
            + (f". {evacuation.status_note}" if evacuation.status_note else "")
        )

    @admin.action(description="Maintenance: move the selected hosts' stores off, one at a time")
    def maintenance_selected(self, request, queryset):
        for host in queryset:
            try:
                host_maintenance_start(host_id=host.pk, actor=request.user)
            except InvalidTransition as exc:
                self.message_user(request, f"{host}: {exc}", messages.ERROR)
                continue
            self.message_user(
                request, f"{host}: in maintenance; its stores are moved off one at a time (progress on its page)."
            )

    @admin.action(description="Ready: the selected hosts take new stores again")
    def ready_selected(self, request, queryset):
        for host in queryset:
            host_transition(host_id=host.pk, to=Host.Status.READY, actor=request.user, note="ready in the admin")
        self.message_user(request, f"{queryset.count()} host(s) ready for new stores.")

    @admin.action(description="Run the host check again (in a worker)")
    def check_selected(self, request, queryset):
        for host in queryset:
            host_check_enqueue(host_id=host.pk)
        self.message_user(
            request,
            f"The host check of {queryset.count()} host(s) is queued for a worker; the result shows on each "
            "host's page (what it found, or why it failed) in a few seconds.",
        )


class PoolTargetForm(forms.ModelForm):
    class Meta:
        model = PoolTarget
        fields = ["platform", "memory_mb", "cpus", "ready_target"]

    def clean_platform(self):
        platform = self.cleaned_data["platform"]
        if not platform_poolable(platform):
            raise ValidationError(f"{platform} stacks cannot be kept warm yet: only WooCommerce can be claimed.")
        return platform


@admin.register(PoolTarget)
class PoolTargetAdmin(admin.ModelAdmin):
    """The warm pool's size per platform and size class (provisioning/README.md, "The warm pool"): the refill
    (every minute) builds or removes stacks on each active host to match `ready_target`."""

    form = PoolTargetForm
    list_display = ["platform", "memory_mb", "cpus", "ready_target", "ready", "building", "updated_at"]
    list_editable = ["ready_target"]

    @admin.display(description="ready now")
    def ready(self, target):
        return pool_counts(target)["ready"]

    @admin.display(description="building")
    def building(self, target):
        return pool_counts(target)["building"]

    def get_readonly_fields(self, request, obj=None):
        return ["platform", "memory_mb", "cpus"] if obj else []


@admin.register(PoolStack)
class PoolStackAdmin(admin.ModelAdmin):
    """Read-only: the pool's stacks, where each runs, and which store claimed it."""

    list_display = ["store_id", "platform", "memory_mb", "cpus", "host", "state", "ready_at", "claimed_by", "note"]
    list_filter = ["state", "platform", "host"]
    list_select_related = ["host", "claimed_by"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StoreMove)
class StoreMoveAdmin(_ReadOnly):
    """Read-only: every move of a store between hosts, with its switch window (provisioning/moves.py)."""

    list_display = [
        "store",
        "source_host",
        "target_host",
        "status",
        "downtime_seconds",
        "copy_seconds",
        "database_bytes",
        "created_at",
        "job",
    ]
    list_filter = ["status", "source_host", "target_host"]
    list_select_related = ["store", "source_host", "target_host", "job"]


@admin.register(HostEvacuation)
class HostEvacuationAdmin(_ReadOnly):
    """Read-only: hosts in maintenance having their stores moved off, and how far each got."""

    list_display = ["host", "status", "moved", "failed", "remaining", "current", "created_at", "status_note"]
    list_select_related = ["host"]

    @admin.display(description="moved")
    def moved(self, evacuation):
        return evacuation_progress(evacuation)["moved"]

    @admin.display(description="failed (stay on the host)")
    def failed(self, evacuation):
        return evacuation_progress(evacuation)["failed"]

    @admin.display(description="remaining")
    def remaining(self, evacuation):
        return evacuation_progress(evacuation)["remaining"]

    @admin.display(description="moving now")
    def current(self, evacuation):
        return evacuation_progress(evacuation)["current"] or "–"
