from django.conf import settings
from django.db import models

from provisioning.kinds import kind_choices


class ProvisioningJob(models.Model):
    """One operation on a store, of any registered kind (provisioning.kinds): provisioning's own below, and
    those other apps register (backups: backup, restore, verify)."""

    class Kind(models.TextChoices):  # provisioning's own kinds; the field's choices are every registered kind
        PROVISION = "provision", "Provision"
        RETRY = "retry", "Retry provisioning"
        SUSPEND = "suspend", "Suspend"
        RESUME = "resume", "Resume"
        TEARDOWN = "teardown", "Tear down"
        UPDATE_LIMITS = "update_limits", "Update limits"
        RESTART = "restart", "Restart"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=20, choices=kind_choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    rq_job_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField(default=15 * 60)
    error = models.TextField(blank=True, help_text="The failing step and the full error, for staff.")
    reaped_at = models.DateTimeField(
        null=True, blank=True, help_text="Failed by the reaper: its worker was gone, or it ran past its timeout."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("use_rq_dashboard", "Can use the RQ dashboard and clear failed RQ jobs")]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk} for store {self.store_id}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class JobStep(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    job = models.ForeignKey(ProvisioningJob, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    order = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    output = models.TextField(blank=True)

    class Meta:
        ordering = ["job", "order"]
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="jobstep_unique_name_per_job")]

    def __str__(self):
        return f"{self.order}. {self.title} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class JobLogLine(models.Model):
    """A line of a step's log, readable by the store's customer and by staff. Never holds a secret."""

    step = models.ForeignKey(JobStep, on_delete=models.CASCADE, related_name="log_lines")
    created_at = models.DateTimeField(auto_now_add=True)
    message = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.message[:80]
