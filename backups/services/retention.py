"""Scheduled backups and retention: which stores are due a backup, `restic forget --prune` per store, and the
removal of restore exports kept as long as the store's snapshots."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from backups import restic
from backups.models import BackupRun, RestoreExport, RunStatus
from backups.services.backup import backup_enqueue
from backups.services.records import BackupConflict
from backups.services.restore_export import export_path
from stores.models import Store

Kind = BackupRun.Kind


def backups_enqueue_due(*, now=None, dry_run: bool = False) -> list[int]:
    """Queue a scheduled backup of every active store whose last backup is older than the interval."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.BACKUP_INTERVAL_HOURS)
    due = []
    for store in Store.objects.filter(status=Store.Status.ACTIVE).order_by("pk"):
        last = store.backup_runs.exclude(status=RunStatus.FAILED).exclude(kind__in=BackupRun.BEFORE_A_CHANGE).first()
        if last is not None and last.created_at > cutoff:
            continue
        if not dry_run:
            try:
                backup_enqueue(store_id=store.pk, kind=Kind.SCHEDULED)
            except BackupConflict:
                continue
        due.append(store.pk)
    return due


def retention_days(store: Store) -> int:
    return settings.BACKUP_RETENTION_DAYS_DAILY_PLANS if store.plan.daily_backups else settings.BACKUP_RETENTION_DAYS


def backups_prune(*, dry_run: bool = False) -> dict[str, list[str]]:
    """Apply retention by time: forget each store's snapshots older than its plan's retention (counted back
    from its newest snapshot, so the newest always stays), then prune. Returns tag -> forgotten ids.
    Restore exports past the same retention lose their file first (no restic needed for that)."""
    restore_exports_remove_expired(dry_run=dry_run)
    forgotten: dict[str, list[str]] = {}
    store_ids = BackupRun.objects.exclude(store=None).values_list("store_id", flat=True).distinct()
    stores = list(Store.objects.filter(pk__in=store_ids))
    targets = [(f"store-{s.pk}", retention_days(s)) for s in stores if s.status != Store.Status.DELETED]
    targets += [
        (Kind.SYSTEM.value, settings.BACKUP_SYSTEM_RETENTION_DAYS),
        (Kind.CODE.value, settings.BACKUP_SYSTEM_RETENTION_DAYS),
    ]
    if dry_run:
        return {tag: [] for tag, _ in targets}
    if not restic.repository_exists():
        return {}
    for tag, days in targets:
        ids = restic.forget(tags=[tag], keep_within=f"{days}d", prune=True)
        if ids:
            BackupRun.objects.filter(snapshot_id__in=ids).update(forgotten_at=timezone.now())
        forgotten[tag] = ids
    # A deleted store keeps its snapshots (its final backup above all) for its retention period after
    # teardown, then all of them go.
    for store in stores:
        if store.status != Store.Status.DELETED:
            continue
        deleted = store.events.filter(new_status=Store.Status.DELETED).order_by("-created_at").first()
        if deleted is None or deleted.created_at > timezone.now() - timedelta(days=retention_days(store)):
            continue
        forgotten[f"store-{store.pk}"] = store_snapshots_forget(store_id=store.pk)
    return forgotten


def store_snapshots_forget(*, store_id: int) -> list[str]:
    """Forget (and prune) every snapshot of one store, its final backup included, and mark their records:
    for a deleted store whose retention is over (above), or whose account is purged (billing's closure).
    Returns the forgotten ids."""
    ids = [snapshot["id"] for snapshot in restic.snapshots(tags=[f"store-{store_id}"])]
    if ids:
        restic.forget_ids(ids, prune=True)
        BackupRun.objects.filter(snapshot_id__in=ids).update(forgotten_at=timezone.now())
    return ids


def restore_exports_remove_expired(*, now: datetime | None = None, dry_run: bool = False) -> list[int]:
    """Remove the files of exports older than their store's backup retention (the snapshots they came from
    are gone by then too); the records stay, marked removed. Returns their ids."""
    now = now or timezone.now()
    removed = []
    for export in RestoreExport.objects.filter(removed_at=None).select_related("store__plan").order_by("pk"):
        if export.created_at > now - timedelta(days=retention_days(export.store)):
            continue
        removed.append(export.pk)
        if dry_run:
            continue
        if export.file_name:
            export_path(export).unlink(missing_ok=True)
        RestoreExport.objects.filter(pk=export.pk).update(removed_at=now)
    return removed
