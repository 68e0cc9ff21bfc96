from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from backups.models import (
    BackupDownload,
    BackupEvent,
    BackupRun,
    FileRestore,
    HostRecovery,
    HostRecoveryStore,
    RestoreExport,
    RestoreRun,
    StoreImport,
    TransferEvent,
)
from backups.selectors import host_recovery_progress
from backups.services.recovery import RecoveryRefused, host_recovery_start
from provisioning.admin import HostAdmin
from stores.models import Host


class BackupEventInline(admin.TabularInline):
    model = BackupEvent
    fk_name = "backup_run"
    extra = 0
    can_delete = False
    fields = readonly_fields = ["created_at", "old_status", "new_status", "note"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(BackupRun)
class BackupRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "store", "kind", "status_badge", "snapshot_short", "size_bytes", "duration", "finished_at"]
    list_filter = ["status", "kind", ("forgotten_at", admin.EmptyFieldListFilter)]
    list_select_related = ["store"]
    search_fields = ["snapshot_id", "store__domain"]
    readonly_fields = [f.name for f in BackupRun._meta.fields]
    inlines = [BackupEventInline]

    @admin.display(description="Status", ordering="status")
    def status_badge(self, run):
        colour = {"failed": "#b91c1c", "succeeded": "#047857"}.get(run.status, "#92400e")
        return format_html('<strong style="color:{}">{}</strong>', colour, run.get_status_display())

    @admin.display(description="Snapshot")
    def snapshot_short(self, run):
        return run.snapshot_id[:8]

    @admin.display(description="Seconds")
    def duration(self, run):
        return f"{run.duration_seconds:.1f}" if run.duration_seconds is not None else ""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RestoreRun)
class RestoreRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "store", "scope", "status", "snapshot_id", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "scope"]
    list_select_related = ["store", "created_by"]
    readonly_fields = [f.name for f in RestoreRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TransferEventInline(admin.TabularInline):
    model = TransferEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ["created_at", "old_status", "new_status", "note"]

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Downloads and imports are the merchant's requests, moved only by their jobs: staff read them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RestoreExport)
class RestoreExportAdmin(ReadOnlyAdmin):
    """What changed since a snapshot, found before a restore: its summary and counts, or its error. The file
    itself is the merchant's, downloaded from their backups page only."""

    list_display = ["pk", "store", "status", "summary", "changed_after", "restore_run", "created_at", "removed_at"]
    list_filter = ["status", ("removed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["store", "restore_run"]
    search_fields = ["snapshot_id", "store__domain"]
    readonly_fields = [f.name for f in RestoreExport._meta.fields]


@admin.register(BackupDownload)
class BackupDownloadAdmin(ReadOnlyAdmin):
    list_display = ["pk", "store", "status", "snapshot_id", "database_bytes", "files_bytes", "expires_at", "removed_at"]
    list_filter = ["status", ("removed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["store"]
    search_fields = ["snapshot_id", "store__domain"]
    readonly_fields = [f.name for f in BackupDownload._meta.fields]
    inlines = [TransferEventInline]


@admin.register(StoreImport)
class StoreImportAdmin(ReadOnlyAdmin):
    list_display = ["pk", "store", "status", "created_by", "created_at", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["store", "created_by"]
    search_fields = ["store__domain"]
    readonly_fields = [f.name for f in StoreImport._meta.fields]
    inlines = [TransferEventInline]


@admin.register(FileRestore)
class FileRestoreAdmin(ReadOnlyAdmin):
    list_display = ["pk", "store", "path", "status", "restored_count", "created_by", "finished_at"]
    list_filter = ["status"]
    list_select_related = ["store", "created_by"]
    search_fields = ["store__domain", "path"]
    readonly_fields = [f.name for f in FileRestore._meta.fields]
    inlines = [TransferEventInline]


# --- Restoring a lost host's stores elsewhere (backups/services/recovery.py) ---------------------------------


class HostRecoveryStoreInline(admin.TabularInline):
    model = HostRecoveryStore
    extra = 0
    can_delete = False
    fields = readonly_fields = ["store", "status", "backup_used", "target_host", "job_link", "reason", "finished_at"]

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Backup used")
    def backup_used(self, row):
        if row.backup is None:
            return "–"
        when = row.backup.started_at or row.backup.finished_at
        return f"#{row.backup_id} ({row.backup.get_kind_display().lower()}, {when:%Y-%m-%d %H:%M} UTC)"

    @admin.display(description="Job")
    def job_link(self, row):
        if row.job_id is None:
            return "–"
        url = reverse("admin:provisioning_provisioningjob_change", args=[row.job_id])
        return format_html('<a href="{}">#{} {}</a>', url, row.job_id, row.job.get_status_display().lower())


@admin.register(HostRecovery)
class HostRecoveryAdmin(admin.ModelAdmin):
    """The progress of a host recovery: each store with its status, the backup used and the host it went to.
    Started from the host list's action, never added here."""

    change_form_template = "admin/backups/hostrecovery/change_form.html"  # refreshes itself while under way
    list_display = ["pk", "host", "progress", "created_by", "created_at"]
    list_select_related = ["host", "created_by"]
    fields = readonly_fields = ["host", "progress", "created_by", "created_at"]
    inlines = [HostRecoveryStoreInline]

    @admin.display(description="Progress")
    def progress(self, recovery):
        counts = host_recovery_progress(recovery)
        return ", ".join(f"{count} {status}" for status, count in counts.items() if count) or "no stores"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None:
            context["under_way"] = obj.stores.filter(status__in=HostRecoveryStore.ACTIVE).exists()
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)


class HostWithRecoveryAdmin(HostAdmin):
    """provisioning's host admin, plus the restore of a lost host's stores: provisioning sits below backups
    and cannot offer an action that restores backups, so backups registers the host admin again with it."""

    actions = [*HostAdmin.actions, "recover_selected"]

    def has_recover_permission(self, request):
        return request.user.has_perm("backups.recover_host")

    @admin.action(description="Restore this host's stores elsewhere from their latest backups", permissions=["recover"])
    def recover_selected(self, request, queryset):
        started = []
        for host in queryset:
            try:
                recovery = host_recovery_start(host_id=host.pk, actor=request.user)
            except RecoveryRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            started.append(recovery)
            counts = host_recovery_progress(recovery)
            self.message_user(
                request,
                f"{host.name}: {counts['pending']} store(s) queued to be restored elsewhere from their latest "
                f"backup; {counts['skipped']} skipped (see the recovery for why).",
                messages.WARNING if counts["skipped"] else messages.SUCCESS,
            )
        if len(started) == 1:
            return HttpResponseRedirect(reverse("admin:backups_hostrecovery_change", args=[started[0].pk]))
        return None


admin.site.unregister(Host)
admin.site.register(Host, HostWithRecoveryAdmin)
