"""The one writer of BackupRun, RestoreRun and RestoreExport statuses, the errors the backup pages and commands
catch, the restic tags of a store's snapshots, and the check that a snapshot is a store's."""

from backups import restic
from backups.models import RUN_ALLOWED_FROM, BackupEvent, BackupRun, RestoreExport, RestoreRun
from shophosting.core.transitions import transition
from stores.exceptions import StoreBusy
from stores.models import Store


class BackupConflict(StoreBusy):
    """Another operation on this store (a backup, a restore, a provisioning job) is queued or running."""


class SnapshotNotFound(Exception):
    pass


class RepositoryUnavailable(Exception):
    """restic could not answer (the repository is locked, unreachable or broken); nothing was changed."""


def store_tags(store: Store) -> list[str]:
    return [f"store-{store.pk}", f"customer-{store.customer_id}"]


EVENT_LINKS = {BackupRun: "backup_run", RestoreRun: "restore_run", RestoreExport: "restore_export"}


def run_transition(model, run_id: int, to: str, *, note: str = "", **fields):
    """The one writer of BackupRun/RestoreRun/RestoreExport.status: the shared transition, along RUN_ALLOWED_FROM."""
    return transition(
        model,
        run_id,
        to,
        allowed_from=RUN_ALLOWED_FROM,
        event_model=BackupEvent,
        event_link=EVENT_LINKS[model],
        note=note[:5000],
        **fields,
    )


def snapshot_for_store(*, store: Store, snapshot_id: str) -> dict:
    """The restic snapshot `snapshot_id` (full or short id) if it is this store's; else SnapshotNotFound.

    Malformed ids never reach restic."""
    if not restic.SNAPSHOT_ID.match(snapshot_id or ""):
        raise SnapshotNotFound("not a snapshot id")
    for snapshot in restic.snapshots(tags=[f"store-{store.pk}"]):
        if snapshot_id in (snapshot["id"], snapshot.get("short_id")):
            return snapshot
    raise SnapshotNotFound(f"snapshot {snapshot_id} is not one of store {store.pk}'s")
