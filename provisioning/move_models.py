"""The records of moves between hosts (provisioning/moves.py): one `StoreMove` per move of a store, the domain
record of its `move` job, and one `HostEvacuation` per host put into maintenance, whose stores are moved off
one at a time. Imported by provisioning.models, like the care tables."""

from django.conf import settings
from django.db import models

from shophosting.core.transitions import StatusEvent


class HostEvacuation(models.Model):
    """A host in maintenance having its stores moved off, one move at a time (provisioning.moves)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Moving stores off"
        COMPLETED = "completed", "Every store has had its turn"
        CANCELLED = "cancelled", "Cancelled"

    host = models.ForeignKey("stores.Host", on_delete=models.CASCADE, related_name="evacuations")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING, db_index=True)
    status_note = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"evacuation #{self.pk} of host {self.host_id} ({self.status})"


class StoreMove(models.Model):
    """One move of a store to another host: where from, where to, how it went, and the measured downtime (the
    final sync and the switch, while nginx shows the maintenance page). Its status follows its job's, written
    only by the move kind's hooks (and the switch step, under this row's lock)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Moving"
        SWITCHED = "switched", "Switched; removing the old stack"  # the store runs on the target now
        MOVED = "moved", "Moved"
        FAILED = "failed", "Failed, the store stayed where it was"
        FAILED_AFTER_SWITCH = "failed_after_switch", "Moved, the old stack is not removed yet"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.SWITCHED)

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="moves")
    # None for a move an evacuation could not start (refused: its reason is the error); else its job.
    job = models.OneToOneField(
        "provisioning.ProvisioningJob", null=True, blank=True, on_delete=models.CASCADE, related_name="store_move"
    )
    evacuation = models.ForeignKey(
        HostEvacuation, null=True, blank=True, on_delete=models.SET_NULL, related_name="moves"
    )
    source_host = models.ForeignKey("stores.Host", on_delete=models.PROTECT, related_name="moves_from")
    source_port = models.PositiveIntegerField()
    target_host = models.ForeignKey(
        "stores.Host", null=True, blank=True, on_delete=models.PROTECT, related_name="moves_to"
    )
    target_port = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    # The source host's clock (epoch seconds) when the first copy of the files began: the final sync copies
    # what changed since (a little before it, for clocks' granularity).
    files_copied_at = models.BigIntegerField(null=True, blank=True)
    # What was copied, and how long each part took (seconds).
    database_bytes = models.BigIntegerField(null=True, blank=True)
    files_bytes = models.BigIntegerField(null=True, blank=True)
    copy_seconds = models.FloatField(null=True, blank=True)
    # The switch window: from the maintenance page going up (the final sync starts) to nginx routing the
    # store to the target. Requests in it get the maintenance page (503); outside it the store answers.
    downtime_started_at = models.DateTimeField(null=True, blank=True)
    downtime_ended_at = models.DateTimeField(null=True, blank=True)
    downtime_seconds = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"move of store {self.store_id} from host {self.source_host_id} to {self.target_host_id} ({self.status})"


class MoveEvent(StatusEvent):
    """A status change of a store move or of a host evacuation."""

    store_move = models.ForeignKey(StoreMove, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    evacuation = models.ForeignKey(
        HostEvacuation, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
