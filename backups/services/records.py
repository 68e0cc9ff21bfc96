"""The one writer of BackupRun and RestoreRun statuses, the errors the backup pages and commands catch, and the
restic tags of a store's snapshots."""

from backups.models import RUN_ALLOWED_FROM, BackupEvent, BackupRun
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


def run_transition(model, run_id: int, to: str, *, note: str = "", **fields):
    """The one writer of BackupRun/RestoreRun.status: the shared transition, along RUN_ALLOWED_FROM."""
    return transition(
        model,
        run_id,
        to,
        allowed_from=RUN_ALLOWED_FROM,
        event_model=BackupEvent,
        event_link="backup_run" if model is BackupRun else "restore_run",
        note=note[:5000],
        **fields,
    )
