"""Reads for the backup pages: a store's snapshots (BackupRun rows reconciled with restic) and restore progress."""

import logging
from dataclasses import dataclass

from backups import restic
from backups.models import BackupRun, RestoreRun, RunStatus
from stores.models import Store

logger = logging.getLogger(__name__)


@dataclass
class SnapshotList:
    runs: list[BackupRun]
    active_backup: BackupRun | None
    active_restore: RestoreRun | None
    repository_error: str = ""


def store_snapshot_list(store: Store) -> SnapshotList:
    """Succeeded runs whose snapshot restic still has, newest first, plus what is running now."""
    from backups.services import store_snapshots_reconcile

    error = ""
    try:
        store_snapshots_reconcile(store=store)
    except restic.ResticError as exc:
        logger.warning("could not reconcile the snapshots of store %s: %s", store.pk, exc)
        error = "The backup repository could not be read just now; the list may be out of date."
    runs = list(
        store.backup_runs.filter(status=RunStatus.SUCCEEDED, forgotten_at=None)
        .exclude(snapshot_id="")
        .order_by("-finished_at")
    )
    return SnapshotList(
        runs=runs,
        active_backup=store.backup_runs.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).first(),
        active_restore=store.restore_runs.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).first(),
        repository_error=error,
    )


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
