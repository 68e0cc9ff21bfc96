from django.conf import settings
from django.db import models

from shophosting.core.transitions import StatusEvent


class StagingRun(models.Model):
    """One operation between a live store and its staging copy: the domain record of a job of a `staging_*`
    kind (staging/kinds.py). Its status follows the job's, written only by the kinds' hooks (a StagingEvent
    each). Which store the job holds: the copy for `create` and `refresh` (they change the copy), the live
    store for `push` and `undo` (they change the live store, and its pre-push backup is the live store's)."""

    class Kind(models.TextChoices):
        CREATE = "create", "Create the staging copy"
        REFRESH = "refresh", "Refresh staging from live"
        PUSH = "push", "Push staging to live"
        UNDO = "undo", "Undo a push"

    class Scope(models.TextChoices):
        BOTH = "both", "Files and database"
        DATABASE = "database", "Database only"
        FILES = "files", "Files only"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    live = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="staging_runs_as_live")
    staging = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="staging_runs")
    job = models.OneToOneField("provisioning.ProvisioningJob", on_delete=models.CASCADE, related_name="staging_run")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.BOTH)
    # A database push limited to these tables (empty: the whole database).
    tables = models.JSONField(default=list, blank=True)
    # A push: what the snapshot provider (provisioning.safety; backups) returned for the live store's
    # pre-push backup, which an undo puts back.
    backup_reference = models.CharField(max_length=64, blank=True)
    # A create or refresh from one of the live store's backups (None: a live copy, made from the store as it is).
    source_backup = models.ForeignKey(
        "backups.BackupRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="staging_runs"
    )
    undoes = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="undone_by")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()} (store {self.live_id}, staging {self.staging_id}): {self.status}"


class StagingEvent(StatusEvent):
    """A status change of a staging run."""

    run = models.ForeignKey(StagingRun, on_delete=models.CASCADE, related_name="events")
