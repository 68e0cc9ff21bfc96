from django.conf import settings
from django.db import models

from shophosting.core.customer_pages import CustomerPagesQuerySet
from shophosting.core.transitions import StatusEvent


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
# to-status -> the statuses a backup or restore run may reach it from. A run that ended stays ended: a worker
# that comes back after its run was reaped cannot mark it succeeded.
RUN_ALLOWED_FROM: dict[str, set[str]] = {
    RunStatus.RUNNING: {RunStatus.QUEUED},
    RunStatus.SUCCEEDED: {RunStatus.RUNNING},
    RunStatus.FAILED: {RunStatus.QUEUED, RunStatus.RUNNING},
}


class BackupRun(models.Model):
    """One backup: a restic snapshot of a store (its database dump and files) or of the platform itself.

    A store's backup is a job of kind `backup` (`job`); its status follows the job's, written only by
    `backups.services.records.run_transition` (the row lock, a BackupEvent row). Platform backups (system,
    code) have no store and no job."""

    class Kind(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        MANUAL = "manual", "Manual"
        PRE_RESTORE = "pre-restore", "Before a restore"
        PRE_UPDATE = "pre-update", "Before an update"
        PRE_PUSH = "pre-push", "Before a push from staging"
        PRE_IMPORT = "pre-import", "Before an import"
        FINAL = "final", "Final (subscription ended)"
        SYSTEM = "system", "System"
        CODE = "code", "Application code"
        # A snapshot the reconcile job found in the repository with no run recorded here (e.g. made by hand).
        FOUND = "found", "Found in the repository"

    store = models.ForeignKey(
        "stores.Store", null=True, blank=True, on_delete=models.SET_NULL, related_name="backup_runs"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    snapshot_id = models.CharField(max_length=64, blank=True, db_index=True)
    size_bytes = models.BigIntegerField(null=True, blank=True, help_text="What the snapshot holds.")
    added_bytes = models.BigIntegerField(null=True, blank=True, help_text="New data this run stored.")
    database_bytes = models.BigIntegerField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verify_error = models.TextField(blank=True)
    forgotten_at = models.DateTimeField(null=True, blank=True, help_text="Removed from the repository by retention.")
    job = models.ForeignKey(
        "provisioning.ProvisioningJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backup_runs",
        help_text="The job that took it (a restore's or an update's job, for the backup before it).",
    )
    verify_job = models.ForeignKey(
        "provisioning.ProvisioningJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="verified_backup_runs",
        help_text="The last job that checked this snapshot restores.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # The customer's dashboard shows each store's last good backup (shophosting/core/customer_pages.py).
    objects = CustomerPagesQuerySet.as_manager()
    customer_pages_path = "store__customer_id"

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("run_system_backup", "Can run the system backup now")]

    # Taken by another job's step before it changes the store (a restore's job, an update's job), never by a
    # `backup` job of their own; the schedule does not count them.
    BEFORE_A_CHANGE = (Kind.PRE_RESTORE, Kind.PRE_UPDATE, Kind.PRE_PUSH, Kind.PRE_IMPORT)

    def __str__(self):
        target = f"store {self.store_id}" if self.store_id else "platform"
        return f"{self.get_kind_display()} backup of {target} ({self.status})"


class RestoreRun(models.Model):
    """One restore of a store from a snapshot: the database, the files, or both. It runs as a job of kind
    `restore` (`job`), whose steps the customer and staff follow."""

    class Scope(models.TextChoices):
        DATABASE = "db", "Database only"
        FILES = "files", "Files only"
        ALL = "all", "Database and files"

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="restore_runs")
    snapshot_id = models.CharField(max_length=64)
    scope = models.CharField(max_length=10, choices=Scope.choices)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    log = models.TextField(
        blank=True, help_text="Restores before the job engine logged here; later ones log in their job."
    )
    error = models.TextField(blank=True)
    pre_restore_backup = models.ForeignKey(
        BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(
        "provisioning.ProvisioningJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="restore_runs"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"restore of store {self.store_id} from {self.snapshot_id[:8]} ({self.status})"


class RestoreExport(models.Model):
    """The rows of a store's database created or changed since one of its snapshots (the tables that matter
    for its application: backups.app_tables), found and exported (a CSV per kind of row and one SQL file of
    INSERTs, in one zip) before a database restore would throw them away.

    The merchant asks for it from the restore page (a job of kind `restore_export`) and reads its summary
    before confirming; the restore's own job exports again once the store is offline, into the same record,
    so nothing written in between is missed. The file stays downloadable by the store's owner for the
    store's backup retention, then `backups_prune` removes it (`removed_at`)."""

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="restore_exports")
    backup_run = models.ForeignKey(BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    snapshot_id = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    changed_after = models.DateTimeField(
        null=True, blank=True, help_text="Rows changed at or after this moment (UTC) were exported."
    )
    counts = models.JSONField(default=dict, blank=True, help_text="What the summary counts, per kind of row.")
    rows = models.JSONField(default=dict, blank=True, help_text="Rows exported per selection (app_tables).")
    summary = models.CharField(max_length=500, blank=True)
    file_name = models.CharField(max_length=200, blank=True, help_text="Under BACKUP_EXPORT_DIR.")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    job = models.ForeignKey(
        "provisioning.ProvisioningJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="restore_exports"
    )
    restore_run = models.ForeignKey(
        RestoreRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="exports"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True, help_text="Its file was removed by retention.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"changes of store {self.store_id} since {self.snapshot_id[:8]} ({self.status})"

    @property
    def downloadable(self) -> bool:
        return self.status == RunStatus.SUCCEEDED and bool(self.file_name) and self.removed_at is None


class BackupEvent(StatusEvent):
    """A status change of a backup or restore run, or of a restore's export."""

    backup_run = models.ForeignKey(BackupRun, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    restore_run = models.ForeignKey(RestoreRun, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    restore_export = models.ForeignKey(
        RestoreExport, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )


class Installation(models.Model):
    """This installation's id, made once and kept in the platform database (so a restore of the database on a
    new server keeps it). Every restic tag is namespaced by it; BACKUP_INSTALLATION_ID overrides it."""

    backup_namespace = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.backup_namespace


class BackupDownload(models.Model):
    """A snapshot prepared for the merchant to take away: its database dump (.sql.gz) and its files (.tar.gz),
    made by a job of kind `download` (`job`), served through short-lived signed links, and removed
    BACKUP_DOWNLOAD_KEEP_HOURS after it was made (`expires_at`, then `removed_at`). Status written only by
    `backups.services.download` through the shared transition, along RUN_ALLOWED_FROM."""

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="downloads")
    backup_run = models.ForeignKey(BackupRun, null=True, on_delete=models.SET_NULL, related_name="downloads")
    snapshot_id = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    database_bytes = models.BigIntegerField(null=True, blank=True)
    files_bytes = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    job = models.ForeignKey(
        "provisioning.ProvisioningJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="downloads"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When the prepared archives are removed.")
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"download of store {self.store_id} from {self.snapshot_id[:8]} ({self.status})"

    @property
    def total_bytes(self) -> int | None:
        if self.database_bytes is None or self.files_bytes is None:
            return None
        return self.database_bytes + self.files_bytes


class ImportUpload(models.Model):
    """One file a merchant uploads for an import (the dump or the files archive), received in chunks at
    increasing offsets, so a broken connection resumes where the server's copy ends. The size is declared up
    front and counted against the plan's disk allowance before a byte is stored."""

    class Part(models.TextChoices):
        DATABASE = "database", "Database dump (.sql or .sql.gz)"
        FILES = "files", "Files archive (.tar.gz)"

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="import_uploads")
    part = models.CharField(max_length=10, choices=Part.choices)
    filename = models.CharField(max_length=255)
    size_declared = models.BigIntegerField()
    size_received = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.part} upload {self.pk} for store {self.store_id} ({self.size_received}/{self.size_declared})"

    @property
    def complete(self) -> bool:
        return self.size_received == self.size_declared


class StoreImport(models.Model):
    """An existing store brought in from an uploaded dump and files archive: a job of kind `import` (`job`)
    that checks both, backs the store up (`pre_import_backup`), replaces its database and files, and puts the
    store back from that backup if any later step fails."""

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="imports")
    database_upload = models.ForeignKey(ImportUpload, on_delete=models.PROTECT, related_name="+")
    files_upload = models.ForeignKey(ImportUpload, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True, help_text="Written for the merchant: what was wrong with the upload.")
    pre_import_backup = models.ForeignKey(BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    job = models.ForeignKey(
        "provisioning.ProvisioningJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="imports"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"import into store {self.store_id} ({self.status})"


class SnapshotFileList(models.Model):
    """The files one volume held in a snapshot (read from the volume's archive when the backup was taken): what
    the merchant browses to restore a single file or folder, with no restic call in a page view. Names, kinds,
    sizes and times only, as gzip-compressed JSON rows [path, kind ("d", "f" or "l"), size, mtime]."""

    backup_run = models.ForeignKey(BackupRun, on_delete=models.CASCADE, related_name="file_lists")
    volume = models.CharField(max_length=40, help_text="The volume's suffix (e.g. wp-content).")
    top_directory = models.CharField(max_length=100, help_text="Its mount's directory name, the entries' first part.")
    entries = models.BinaryField()
    entry_count = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["backup_run", "volume"], name="one_file_list_per_volume")]

    def __str__(self):
        return f"{self.volume} of backup {self.backup_run_id} ({self.entry_count} entries)"


class FileRestore(models.Model):
    """One file or folder of a snapshot put back into the store's volume (a job of kind `restore_path`): the
    snapshot's copies overwrite the store's; files the store has there now and the snapshot had not are kept."""

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="file_restores")
    backup_run = models.ForeignKey(BackupRun, null=True, on_delete=models.SET_NULL, related_name="file_restores")
    snapshot_id = models.CharField(max_length=64)
    volume = models.CharField(max_length=40)
    path = models.CharField(max_length=4096, help_text="As listed: `<mount directory>/...`, a file or a folder.")
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    restored_count = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    job = models.ForeignKey(
        "provisioning.ProvisioningJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="file_restores"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"restore of {self.path} into store {self.store_id} ({self.status})"


class TransferEvent(StatusEvent):
    """A status change of a download, an import or a single file restore."""

    download = models.ForeignKey(BackupDownload, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    store_import = models.ForeignKey(
        StoreImport, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    file_restore = models.ForeignKey(
        FileRestore, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )


class HostRecovery(models.Model):
    """Staff's restore of a lost host's stores onto other hosts from their latest backups (backups/recovery.py),
    started from the host admin while the host's engine does not answer. One row per store it took up
    (`HostRecoveryStore`), each a `restore_elsewhere` job of its own; this row only groups them."""

    host = models.ForeignKey("stores.Host", on_delete=models.PROTECT, related_name="recoveries")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "host recoveries"
        permissions = [("recover_host", "Can restore a lost host's stores on other hosts from their backups")]

    def __str__(self):
        return f"recovery #{self.pk} of host {self.host}"


class HostRecoveryStore(models.Model):
    """One store of a host recovery: the backup it is restored from, the host it goes to, its job."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RESTORING = "restoring", "Restoring"
        RESTORED = "restored", "Restored"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    ACTIVE = (Status.PENDING, Status.RESTORING)

    recovery = models.ForeignKey(HostRecovery, on_delete=models.CASCADE, related_name="stores")
    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="recoveries")
    status = models.CharField(max_length=20, choices=Status.choices, db_index=True)
    backup = models.ForeignKey(
        BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Restored from."
    )
    target_host = models.ForeignKey(
        "stores.Host", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Restored on."
    )
    job = models.ForeignKey(
        "provisioning.ProvisioningJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True, help_text="Why it was skipped or failed.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["recovery", "id"]

    def __str__(self):
        return f"store {self.store_id} in recovery #{self.recovery_id} ({self.status})"


# to-status -> the statuses a recovery's store row may reach it from (backups.recovery.row_transition). A
# failed row goes back to pending when staff retry its job; skipped is for a store left where it is (no
# backup, busy, or its host answered again before its restore began).
RECOVERY_ALLOWED_FROM: dict[str, set[str]] = {
    HostRecoveryStore.Status.RESTORING: {HostRecoveryStore.Status.PENDING},
    HostRecoveryStore.Status.RESTORED: {HostRecoveryStore.Status.RESTORING},
    HostRecoveryStore.Status.FAILED: {HostRecoveryStore.Status.PENDING, HostRecoveryStore.Status.RESTORING},
    HostRecoveryStore.Status.SKIPPED: {HostRecoveryStore.Status.PENDING, HostRecoveryStore.Status.RESTORING},
    HostRecoveryStore.Status.PENDING: {HostRecoveryStore.Status.FAILED},
}


class HostRecoveryEvent(StatusEvent):
    """A status change of one store of a host recovery (its first row: old status empty)."""

    recovery_store = models.ForeignKey(HostRecoveryStore, on_delete=models.CASCADE, related_name="events")
