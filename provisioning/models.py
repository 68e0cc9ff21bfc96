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
        MOVE = "move", "Move to another host"
        UNDO = "undo", "Put back what a stopped job changed"

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

    class Path(models.TextChoices):
        BUILT = "built", "Built from scratch"
        CLAIMED = "claimed", "Claimed from the warm pool"

    # A provision (or its retry): whether the stack was built for the store or claimed from the warm pool;
    # set by the allocate step. Each step's time is on its JobStep.
    path = models.CharField(max_length=10, choices=Path.choices, blank=True)
    # How many times a worker put the job back because its host's job slots were all taken
    # (provisioning/host_slots.py); a queued job with waits is "waiting for its host".
    host_waits = models.PositiveIntegerField(default=0, editable=False)
    # An `undo` job (provisioning/undo.py): the reaped job whose kind's undo step it runs.
    undo_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="undo_jobs", editable=False
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


class PoolTarget(models.Model):
    """How many ready stacks the warm pool keeps on each active host for one platform and size class (the
    memory and CPU of the web service, which plans share). Staff change `ready_target` in the admin; the
    refill (provisioning.pool.pool_refill, every minute) builds or removes stacks to match."""

    platform = models.CharField(max_length=20, choices=[("woocommerce", "WooCommerce"), ("magento", "Magento 2")])
    memory_mb = models.PositiveIntegerField(help_text="The web service's memory of the plans in this class.")
    cpus = models.DecimalField(max_digits=5, decimal_places=2, help_text="The web service's CPU of these plans.")
    ready_target = models.PositiveSmallIntegerField(
        default=0, help_text="Stacks kept ready on each active host; 0 turns the pool off for this class."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["platform", "memory_mb", "cpus"]
        constraints = [
            models.UniqueConstraint(fields=["platform", "memory_mb", "cpus"], name="pooltarget_unique_class")
        ]

    def __str__(self):
        return f"{self.platform} {self.memory_mb} MB / {self.cpus} CPU: {self.ready_target} per host"


class PoolStack(models.Model):
    """One stack of the warm pool: its store row (status pooled, no customer) runs it, its job of kind
    pool_fill builds it. `state` changes only in provisioning.pool, under this row's lock."""

    class State(models.TextChoices):
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        CLAIMED = "claimed", "Claimed"
        REMOVING = "removing", "Removing"
        REMOVED = "removed", "Removed"

    LIVE = (State.BUILDING, State.READY, State.FAILED)  # hold a place on the host, counted by the refill

    store = models.OneToOneField("stores.Store", on_delete=models.PROTECT, related_name="pool_stack")
    platform = models.CharField(max_length=20)
    memory_mb = models.PositiveIntegerField()
    cpus = models.DecimalField(max_digits=5, decimal_places=2)
    host = models.ForeignKey("stores.Host", on_delete=models.PROTECT, related_name="pool_stacks")
    state = models.CharField(max_length=10, choices=State.choices, default=State.BUILDING, db_index=True)
    # role -> image the stack was built from; a stack whose images are not the settings' of the day is
    # replaced, never claimed.
    images = models.JSONField(default=dict, blank=True)
    # role -> the id those images had on the host's engine when it was built: a rebuilt image keeps its tag.
    image_ids = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.OneToOneField(
        "stores.Store", null=True, blank=True, on_delete=models.PROTECT, related_name="claimed_pool_stack"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["platform", "memory_mb", "cpus", "state"], name="poolstack_class_state")]

    def __str__(self):
        return f"pool stack {self.store_id} ({self.platform} {self.memory_mb} MB, {self.state})"


class StaleStack(models.Model):
    """What a store left on a host it no longer runs on: its containers, network and volumes there, labelled
    with `object_key`. Recorded when a store is placed on another host while its own is away (backups'
    restore elsewhere); the host's heartbeat removes them once its engine answers again, so the old copy
    never comes back to life or gets served (provisioning/lost_hosts.py)."""

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="stale_stacks")
    host = models.ForeignKey("stores.Host", on_delete=models.CASCADE, related_name="stale_stacks")
    object_key = models.CharField(max_length=64, help_text="The label shophosting.store=<key> its objects carry.")
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    report = models.TextField(blank=True, help_text="What the heartbeat removed, or why it removed nothing.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"stale stack of store {self.store_id} on host {self.host_id}"


class HostImage(models.Model):
    """One image a host's engine holds, as last seen (provisioning/host_images.py): refreshed by the host
    check, `host_images_copy`, `images_build` (the platform's engine) and the platform round (one image list
    per host). What a host is missing is read here, without asking its engine."""

    host = models.ForeignKey("stores.Host", on_delete=models.CASCADE, related_name="images")
    reference = models.CharField(max_length=255, help_text="The tag the stacks name it by, e.g. mariadb:10.11.")
    image_id = models.CharField(max_length=80)
    created = models.DateTimeField(null=True, blank=True, help_text="When the image was built, as the engine says.")
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["host", "reference"]
        constraints = [models.UniqueConstraint(fields=["host", "reference"], name="hostimage_host_reference")]

    def __str__(self):
        return f"{self.reference} on host {self.host_id}"


# Moves between hosts and host evacuations (provisioning/moves.py).
from provisioning.move_models import HostEvacuation, MoveEvent, StoreMove  # noqa: E402, F401
