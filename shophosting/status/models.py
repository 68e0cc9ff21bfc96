from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class Component(models.TextChoices):
    """What the public status page reports on: parts of the platform, never an individual store."""

    WEB = "web", "Website and customer dashboard"
    PROVISIONING = "provisioning", "Store provisioning"
    BACKUPS = "backups", "Backups"
    HOSTING = "hosting", "Store hosting"


class Severity(models.TextChoices):
    # Ordered from harmless to worst: a component's state is its worst open notice.
    MAINTENANCE = "maintenance", "Maintenance"
    DEGRADED = "degraded", "Degraded performance"
    OUTAGE = "outage", "Outage"


SEVERITY_RANK = {Severity.MAINTENANCE: 1, Severity.DEGRADED: 2, Severity.OUTAGE: 3}


class StatusNotice(models.Model):
    """A notice staff write for the public status page. Open while closed_at is empty; shown only when
    published."""

    title = models.CharField(max_length=200)
    body = models.TextField(help_text="Plain words for customers: what is affected and what to do. No store names.")
    severity = models.CharField(max_length=20, choices=Severity.choices, default=Severity.DEGRADED)
    component = models.CharField(max_length=20, choices=Component.choices)
    started_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="Empty while the notice is open.")
    published = models.BooleanField(default=False, help_text="Shown on the public status page.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["published", "closed_at"])]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.closed_at and self.started_at and self.closed_at < self.started_at:
            raise ValidationError({"closed_at": "A notice cannot close before it started."})

    @property
    def is_open(self) -> bool:
        return self.closed_at is None
