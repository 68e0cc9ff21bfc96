"""Backups' contribution to store care (provisioning.care.checks): the last backup is recent, and the last
verification of a snapshot passed. Registered from BackupsConfig.ready(); provisioning imports none of this."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from backups.models import BackupRun, RunStatus
from provisioning.care.checks import FAILED, OK, SKIPPED, Verdict


def last_backup(store) -> Verdict:
    max_age = timedelta(hours=settings.CARE_BACKUP_MAX_AGE_HOURS)
    run = (
        BackupRun.objects.filter(store=store, status=RunStatus.SUCCEEDED, forgotten_at=None)
        .order_by("-finished_at")
        .first()
    )
    now = timezone.now()
    if run is None:
        if now - store.created_at < max_age:
            return Verdict(SKIPPED, "the first backup is not due yet")
        return Verdict(FAILED, "the store has no backup")
    age = now - run.finished_at
    hours = age.total_seconds() / 3600
    if age > max_age:
        return Verdict(
            FAILED, f"the last backup is {hours:.0f} hours old (at most {settings.CARE_BACKUP_MAX_AGE_HOURS})"
        )
    return Verdict(OK, f"the last backup is {hours:.1f} hours old")


def last_verification(store) -> Verdict:
    run = (
        BackupRun.objects.filter(store=store)
        .filter(Q(verified_at__isnull=False) | ~Q(verify_error=""))
        .order_by("-verify_job_id", "-pk")
        .first()
    )
    if run is None:
        return Verdict(SKIPPED, "no snapshot verified yet (weekly)")
    if run.verify_error:
        return Verdict(FAILED, f"the last verification failed: {run.verify_error[:300]}")
    return Verdict(OK, f"the snapshot of {run.finished_at:%Y-%m-%d} restored and was verified")
