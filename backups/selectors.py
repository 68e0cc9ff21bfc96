"""Reads for the backup pages: a store's snapshots and restore progress, from the database only (the
`snapshots_reconcile` job keeps the BackupRun rows matching the repository); and this installation's id."""

import secrets
from dataclasses import dataclass

from backups.models import BackupRun, Installation, RestoreRun, RunStatus
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


def installation_id() -> str:
    """The id this installation namespaces its restic tags with: made once (random) and kept in the database,
    so it stays the same across restarts and a move of the database to another server."""
    row, _ = Installation.objects.get_or_create(pk=1, defaults={"backup_namespace": secrets.token_hex(6)})
    return row.backup_namespace


# What a store's owner reads about a restore step, by its status. The customer's view is built from these
# words, the step titles (RestoreRun.STEPS) and the run's own fields, never from its log or error: those
# carry restic's and the engine's words (paths, hosts, container names), for staff.
RESTORE_STEP_WORDS = {"succeeded": "done", "running": "in progress", "failed": "stopped here"}


def restore_progress(run: RestoreRun) -> dict:
    """A restore as its store's owner sees it (the restore page and the JSON it polls): plain words only."""
    steps = []
    reached = [name for name, _ in RestoreRun.STEPS].index(run.step) if run.step in dict(RestoreRun.STEPS) else -1
    for index, (name, title) in enumerate(RestoreRun.STEPS):
        if run.scope == RestoreRun.Scope.DATABASE and name == "files":
            continue
        if run.scope == RestoreRun.Scope.FILES and name == "database":
            continue
        if run.status == RunStatus.SUCCEEDED or index < reached:
            status = "succeeded"
        elif index == reached:
            status = "failed" if run.status == RunStatus.FAILED else "running"
        else:
            status = "pending"
        steps.append({"name": name, "title": title, "status": status})
    log = [f"{step['title']}: {RESTORE_STEP_WORDS[step['status']]}" for step in steps if step["status"] != "pending"]
    pre = run.pre_restore_backup
    if pre is not None and pre.snapshot_id:
        log.insert(1, f"snapshot {pre.snapshot_id[:8]} keeps the store as it was before this restore")
    error = ""
    if run.status == RunStatus.FAILED:
        failed = next((step["title"] for step in steps if step["status"] == "failed"), "a step")
        error = f"The restore stopped at “{failed}”. Our team has been told and will look into it."
    return {
        "status": run.status,
        "active": run.status in (RunStatus.QUEUED, RunStatus.RUNNING),
        "steps": steps,
        "log": log,
        "error": error,
    }
