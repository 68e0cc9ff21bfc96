"""Platform checks: what the platform itself is made of (the backup repository, each queue's workers, each
host's Docker engine, nginx) recorded as PlatformCheck rows, and the staff-only incidents they open.

The probes live with the module that may talk to each system (backups/restic.py for `restic check`,
shophosting/health.py for workers, engines and nginx); they hand their result to `platform_check_record`,
which writes the row and opens or closes the component's incident. A platform incident is an Incident with
no store and a `component`: one open per component (`open_for_component`, as `open_for_store` for stores),
mailed to CARE_STAFF_EMAILS and posted to CARE_WEBHOOK_URL like a store's, never mailed to a merchant.
"""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from provisioning.care.models import Incident, IncidentEvent, PlatformCheck
from provisioning.care.services import care_settings, incident_close, incident_notify

OUTPUT_MAX = 4000  # characters of a check's output kept on its row (restic check lists every damaged pack)


@transaction.atomic
def platform_check_record(
    *,
    component: str,
    ok: bool,
    output: str = "",
    duration_ms: int = 0,
    threshold: int | None = None,
    at: datetime | None = None,
) -> PlatformCheck:
    """Record one look at `component`. A passing one closes its open incident; the `threshold`-th failing one
    in a row (CARE_INCIDENT_THRESHOLD unless given: 1 for a check that runs weekly) opens one."""
    if not component or len(component) > 60:
        raise ValueError(f"a platform component is named in 1 to 60 characters, not {component!r}")
    care = care_settings()
    threshold = care.threshold if threshold is None else threshold
    at = at or timezone.now()
    check = PlatformCheck.objects.create(
        component=component, checked_at=at, ok=ok, output=output.strip()[:OUTPUT_MAX], duration_ms=duration_ms
    )
    if ok:
        _incident_close(component=component, at=at)
    else:
        _incident_open_if_due(check=check, threshold=threshold)
    return check


def _summary(check: PlatformCheck) -> str:
    lines = [line.strip() for line in check.output.splitlines() if line.strip()]
    return "; ".join(lines[:5])[:1000] or "the check failed without saying why"


def _incident_open_if_due(*, check: PlatformCheck, threshold: int) -> None:
    current = Incident.objects.select_for_update().filter(open_for_component=check.component).first()
    if current is not None:
        current.summary = _summary(check)  # the latest failure's words
        current.save(update_fields=["summary", "updated_at"])
        return
    last = list(PlatformCheck.objects.filter(component=check.component).order_by("-checked_at", "-id")[:threshold])
    if len(last) < threshold or any(row.ok for row in last):
        return
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                component=check.component,
                checks=check.component,
                summary=_summary(check),
                affects_uptime=False,  # no store's uptime: platform incidents are their own kind in the metrics
                open_for_component=check.component,
                opened_at=check.checked_at,
            )
    except IntegrityError:  # another round opened it a moment ago
        return
    IncidentEvent.objects.create(
        incident=incident, old_status="", new_status=Incident.Status.OPEN, note=f"{threshold} failing checks"
    )
    transaction.on_commit(lambda: incident_notify(incident_id=incident.pk))


def _incident_close(*, component: str, at: datetime) -> None:
    incident = Incident.objects.filter(open_for_component=component).first()
    if incident is not None:
        incident_close(incident_id=incident.pk, at=at, note="the check passes again")
