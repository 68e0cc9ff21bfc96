"""Check history and incidents. Imported by provisioning.models, so the app label is `provisioning`."""

from django.db import models
from django.db.models import Q

from shophosting.core.transitions import StatusEvent


class CheckRound(models.Model):
    """One round of every check against one store. Its outcome is what uptime counts: `down` when a check
    that decides availability failed, `maintenance` when the platform itself had the store down (suspended,
    or an operation that stops it was running), and then no probe was made."""

    class Outcome(models.TextChoices):
        UP = "up", "Up"
        DEGRADED = "degraded", "Up, with a warning"  # only checks that do not decide availability failed
        DOWN = "down", "Down"
        MAINTENANCE = "maintenance", "Maintenance"

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="check_rounds")
    checked_at = models.DateTimeField(db_index=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    latency_ms = models.PositiveIntegerField(default=0, help_text="The whole round, every check in turn.")
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["store", "checked_at"])]

    def __str__(self):
        return f"{self.store_id} {self.checked_at:%Y-%m-%d %H:%M} {self.outcome}"


class CheckResult(models.Model):
    """One check of one round: its result and how long it took."""

    class Result(models.TextChoices):
        OK = "ok", "OK"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Does not apply"  # e.g. no certificate asked for, WooCommerce not installed

    round = models.ForeignKey(CheckRound, on_delete=models.CASCADE, related_name="results")
    check_name = models.CharField(max_length=40)
    result = models.CharField(max_length=10, choices=Result.choices)
    latency_ms = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.check_name}: {self.result}"


class CheckHourly(models.Model):
    """Rounds older than CARE_HISTORY_DAYS, downsampled to one row per store and hour (the raw rows go)."""

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="check_hours")
    hour = models.DateTimeField()
    up = models.PositiveIntegerField(default=0)  # degraded rounds count as up
    down = models.PositiveIntegerField(default=0)
    maintenance = models.PositiveIntegerField(default=0)
    latency_ms_avg = models.PositiveIntegerField(default=0)
    latency_ms_max = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-hour"]
        constraints = [models.UniqueConstraint(fields=["store", "hour"], name="checkhourly_unique_store_hour")]

    def __str__(self):
        return f"{self.store_id} {self.hour:%Y-%m-%d %H:00} up {self.up} down {self.down}"


class PlatformCheck(models.Model):
    """One look at one platform component (the backup repository, a queue's workers, a host's Docker engine,
    nginx): what the periodic platform round or the weekly `restic check` found, and how long it took."""

    component = models.CharField(max_length=60, help_text="e.g. backups.repository, workers.default, docker.host-1")
    checked_at = models.DateTimeField(db_index=True)
    ok = models.BooleanField()
    output = models.TextField(blank=True, help_text="What the check said, shortened (the failure's first lines).")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["component", "checked_at"])]

    def __str__(self):
        return f"{self.component} {self.checked_at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'failed'}"


class Incident(models.Model):
    """A store failing its checks CARE_INCIDENT_THRESHOLD rounds in a row; a passing round closes it. A platform
    incident has no store but a `component` (provisioning.care.platform): staff are told, no merchant is."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="incidents", null=True, blank=True)
    component = models.CharField(max_length=60, blank=True, help_text="A platform incident's component.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    checks = models.CharField(max_length=300, help_text="The checks that failed, comma-separated.")
    summary = models.TextField(help_text="What failed, in plain words, as the last failing round saw it.")
    affects_uptime = models.BooleanField(default=True, help_text="An availability check failed (not only a warning).")
    # The store's id while open, NULL once closed: a plain unique index then keeps one open incident per
    # store, which MariaDB cannot say as a conditional constraint (Store.live_domain does the same).
    open_for_store = models.PositiveBigIntegerField(null=True, blank=True, unique=True, editable=False)
    open_for_component = models.CharField(max_length=60, null=True, blank=True, unique=True, editable=False)
    opened_at = models.DateTimeField(db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(store__isnull=False) & Q(component="")) | (Q(store__isnull=True) & ~Q(component="")),
                name="incident_store_or_component",
            )
        ]

    def __str__(self):
        where = f"store {self.store_id}" if self.store_id else self.component
        return f"incident #{self.pk} on {where} ({self.status})"

    @property
    def subject(self) -> str:
        """What the incident is about, in words: the store's domain or the platform component."""
        return self.store.domain if self.store_id else f"platform: {self.component}"

    @property
    def duration(self):
        return (self.closed_at - self.opened_at) if self.closed_at else None


class IncidentEvent(StatusEvent):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=10, blank=True)
    new_status = models.CharField(max_length=10)
