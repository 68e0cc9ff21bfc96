from django.conf import settings
from django.db import models

from provisioning.kinds import kind_choices
from shophosting.core.transitions import StatusEvent


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
        HTTPS_SETTINGS = "https_settings", "Apply the store's names and HTTPS settings"
        PRIMARY_NAME = "primary_name", "Change the primary name"
        UPDATE = "update", "Update"

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


class StoreImage(models.Model):
    """The image one role of a store runs (its web server, database, cache ...). Recorded for every role when
    the store is placed (the settings' STORE_IMAGES of that day), and changed for one store by an update, so
    a new default reaches new stores and a rollout moves existing ones, one store at a time."""

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="images")
    role = models.CharField(max_length=20)
    image = models.CharField(max_length=255)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["store", "role"]
        constraints = [models.UniqueConstraint(fields=["store", "role"], name="storeimage_unique_role_per_store")]

    def __str__(self):
        return f"store {self.store_id} {self.role}: {self.image}"


def image_version(image: str) -> str:
    """An image reference as people read it: its last path component (`shophosting/wordpress:6.5` ->
    `wordpress:6.5`); registries and namespaces say nothing to a merchant."""
    return image.rsplit("/", 1)[-1]


class UpdateStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    UPDATED = "updated", "Updated"
    ROLLED_BACK = "rolled_back", "Failed, put back on the old version"
    FAILED = "failed", "Failed"


class StoreUpdate(models.Model):
    """One update of a store's web image: the domain record of a job of kind `update` (provisioning.updates).
    Its status follows the job's, written only by the update kind's hooks (shophosting.core.transitions,
    an UpdateEvent row each)."""

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="updates")
    job = models.OneToOneField(ProvisioningJob, on_delete=models.CASCADE, related_name="store_update")
    role = models.CharField(max_length=20, default="web")
    from_image = models.CharField(max_length=255)
    to_image = models.CharField(max_length=255)
    status = models.CharField(max_length=20, choices=UpdateStatus.choices, default=UpdateStatus.QUEUED)
    # The store's front page title before the update: the check after it must find the same.
    title_before = models.CharField(max_length=500, blank=True)
    # What the registered snapshot provider (provisioning.safety; backups) returned for the pre-update backup.
    backup_reference = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"update of store {self.store_id} to {image_version(self.to_image)} ({self.status})"


class Rollout(models.Model):
    """A new web image rolled out to many stores in batches (provisioning.rollouts): the next batch is queued
    when every update of the previous one has ended; the first failure pauses it."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    platform = models.CharField(max_length=20)
    role = models.CharField(max_length=20, default="web", editable=False)
    image = models.CharField(max_length=255, help_text="The image every chosen store is updated to.")
    batch_size = models.PositiveSmallIntegerField(default=5)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING, db_index=True)
    status_note = models.TextField(blank=True, help_text="Why it paused, or who cancelled it.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("operate_rollout", "Can start, resume and cancel image rollouts")]

    def __str__(self):
        return f"rollout #{self.pk} of {image_version(self.image)} ({self.status})"


class RolloutStore(models.Model):
    """One store of a rollout, in its turn (`position`), and what happened to it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for its turn"
        UPDATING = "updating", "Updating"
        UPDATED = "updated", "Updated"
        ROLLED_BACK = "rolled_back", "Failed, put back"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="targets")
    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="rollout_targets")
    position = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    update = models.OneToOneField(
        StoreUpdate, null=True, blank=True, on_delete=models.SET_NULL, related_name="rollout_target"
    )
    reason = models.TextField(blank=True, help_text="Why it was skipped, failed or cancelled.")

    class Meta:
        ordering = ["rollout", "position"]
        constraints = [models.UniqueConstraint(fields=["rollout", "store"], name="rolloutstore_unique_store")]

    def __str__(self):
        return f"{self.store_id} in rollout {self.rollout_id} ({self.status})"


class UpdateEvent(StatusEvent):
    """A status change of a store update, a rollout or one store of a rollout."""

    store_update = models.ForeignKey(
        StoreUpdate, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    rollout = models.ForeignKey(Rollout, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    rollout_store = models.ForeignKey(
        RolloutStore, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )


# Store care's tables (check history, incidents) live in their own module of the app.
from provisioning.care.models import CheckHourly, CheckResult, CheckRound, Incident, IncidentEvent, PlatformCheck  # noqa: E402, F401
