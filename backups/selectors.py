"""Reads for the backup pages: a store's snapshots, from the database only (the
`snapshots_reconcile` job keeps the BackupRun rows matching the repository); and this installation's id."""

import secrets
from dataclasses import dataclass

from backups.models import BackupRun, HostRecoveryStore, Installation, RestoreExport, RestoreRun, RunStatus
from stores.models import Store


@dataclass
class SnapshotList:
    runs: list[BackupRun]
    active_backup: BackupRun | None
    active_restore: RestoreRun | None


def store_snapshot_list(store: Store) -> SnapshotList:
    """Succeeded runs whose snapshot the repository still had at the last reconcile, newest first, plus what
    is running now. Runs no restic: a page view must not cost a repository listing."""
    runs = list(
        store.backup_runs.filter(status=RunStatus.SUCCEEDED, forgotten_at=None)
        .exclude(snapshot_id="")
        .order_by("-finished_at")
    )
    return SnapshotList(
        runs=runs,
        active_backup=store.backup_runs.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).first(),
        active_restore=store.restore_runs.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).first(),
    )


def store_snapshot(store: Store, snapshot_id: str) -> BackupRun | None:
    """The store's kept snapshot with this full id, as last reconciled; None for anything else."""
    if not snapshot_id:
        return None
    return (
        store.backup_runs.filter(status=RunStatus.SUCCEEDED, forgotten_at=None, snapshot_id=snapshot_id)
        .order_by("-finished_at")
        .first()
    )


def restore_export_latest(store: Store, snapshot_id: str) -> RestoreExport | None:
    """The newest summary of what changed since this snapshot that no restore has used yet (the restore
    page shows it, or its progress)."""
    return store.restore_exports.filter(snapshot_id=snapshot_id, restore_run=None).select_related("job").first()


def restore_exports_downloadable(store: Store) -> list[RestoreExport]:
    """Exports the owner may still download (kept for the store's backup retention), newest first."""
    return list(
        store.restore_exports.filter(status=RunStatus.SUCCEEDED, removed_at=None)
        .exclude(file_name="")
        .select_related("restore_run")
    )


def installation_id() -> str:
    """The id this installation namespaces its restic tags with: made once (random) and kept in the database,
    so it stays the same across restarts and a move of the database to another server."""
    row, _ = Installation.objects.get_or_create(pk=1, defaults={"backup_namespace": secrets.token_hex(6)})
    return row.backup_namespace


def store_backup_latest(store: Store) -> BackupRun | None:
    """The store's newest kept snapshot (any kind but the platform's), as last reconciled: what a restore
    elsewhere starts from when its host is gone."""
    return (
        store.backup_runs.filter(status=RunStatus.SUCCEEDED, forgotten_at=None, finished_at__isnull=False)
        .exclude(snapshot_id="")
        .order_by("-finished_at", "-pk")
        .first()
    )


def host_recovery_progress(recovery) -> dict[str, int]:
    """How many stores of a host recovery are in each status (every status present, zeros included)."""
    counts = dict.fromkeys(HostRecoveryStore.Status.values, 0)
    for status in recovery.stores.values_list("status", flat=True):
        counts[status] += 1
    return counts
