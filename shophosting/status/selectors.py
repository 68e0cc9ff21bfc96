"""What the public status page shows: each component's state from its open published notices, and the recent
notices. Nothing here reads stores or customers, so nothing about them can leak onto the page."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from shophosting.status.models import SEVERITY_RANK, Component, Severity, StatusNotice

CACHE_KEY = "status_page:v1"


@dataclass(frozen=True)
class ComponentState:
    component: str
    label: str
    severity: str  # "operational" or the worst open notice's severity
    label_state: str


def status_page_data() -> dict:
    """{components: [ComponentState], open: [notice], recent: [notice]}, computed at most once per
    STATUS_PAGE_CACHE_SECONDS (services.notice_* clear it when staff change a notice)."""
    return cache.get_or_set(CACHE_KEY, _status_page_compute, settings.STATUS_PAGE_CACHE_SECONDS)


def _status_page_compute() -> dict:
    since = timezone.now() - timedelta(days=settings.STATUS_PAGE_RECENT_DAYS)
    published = StatusNotice.objects.filter(published=True).only(
        "title", "body", "severity", "component", "started_at", "closed_at"
    )
    open_notices = list(published.filter(closed_at__isnull=True))
    recent = list(published.filter(closed_at__isnull=False).filter(closed_at__gte=since)[:50])
    worst: dict[str, str] = {}
    for notice in open_notices:
        if SEVERITY_RANK[notice.severity] > SEVERITY_RANK.get(worst.get(notice.component), 0):
            worst[notice.component] = notice.severity
    states = []
    for value, label in Component.choices:
        severity = worst.get(value, "operational")
        state_label = "Operational" if severity == "operational" else Severity(severity).label
        states.append(ComponentState(component=value, label=label, severity=severity, label_state=state_label))
    return {
        "components": states,
        "open": open_notices,
        "recent": recent,
        "recent_days": settings.STATUS_PAGE_RECENT_DAYS,
    }
