"""The weekly `restic check` of the backup repository, recorded as a platform check (provisioning.care.platform):
a failing check opens a staff incident at once, the next passing one closes it."""

import time

from backups import restic
from provisioning.care.models import PlatformCheck
from provisioning.care.platform import platform_check_record

REPOSITORY_COMPONENT = "backups.repository"


def repository_check() -> PlatformCheck:
    """Run `restic check` and record when, whether it passed, what it said and how long it took."""
    started = time.monotonic()
    try:
        output, ok = restic.check(), True
    except restic.ResticError as exc:
        output, ok = f"{exc}: {exc.stderr.strip()}" if exc.stderr else str(exc), False
    duration_ms = round((time.monotonic() - started) * 1000)
    # Weekly: one failure is an incident already (threshold 1), not CARE_INCIDENT_THRESHOLD weeks of them.
    return platform_check_record(
        component=REPOSITORY_COMPONENT, ok=ok, output=output, duration_ms=duration_ms, threshold=1
    )
