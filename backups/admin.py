from django.contrib import admin
from django.utils.html import format_html

from backups.models import (
    BackupDownload,
    BackupEvent,
    BackupRun,
    FileRestore,
    RestoreExport,
    RestoreRun,
    StoreImport,
    TransferEvent,
)


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
