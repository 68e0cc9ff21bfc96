from backups.selectors import store_snapshot_list
from backups.staging.models import StagingRun
from stores.models import Store
from stores.staging import staging_copy_of

RECENT_RUNS = 10


def staging_overview(live: Store) -> dict:
    """What the live store's staging page shows: its copy (or None), the copy's latest operations, and the
    push that can be undone now (the latest succeeded push with a backup, not undone since), and the live
    store's backups a copy can be made from (as the backups page lists them, newest first: no restic)."""
    copy = staging_copy_of(live)
    runs = list(
        StagingRun.objects.filter(live=live)
        .select_related("job", "staging", "undoes", "source_backup")
        .order_by("-pk")[:RECENT_RUNS]
    )
    undoable = next(
        (
            run
            for run in runs
            if run.kind == StagingRun.Kind.PUSH and run.status == StagingRun.Status.SUCCEEDED and run.backup_reference
        ),
        None,
    )
    if undoable is not None and any(
        run.kind == StagingRun.Kind.UNDO and run.undoes_id == undoable.pk and run.status != StagingRun.Status.FAILED
        for run in runs
    ):
        undoable = None
    return {
        "copy": copy,
        "runs": runs,
        "undoable": undoable,
        "allowed": live.plan.staging,
        # Those a copy can be made from (services.source_backup_choose): not one whose restore check failed.
        "sources": [run for run in store_snapshot_list(live).runs if not run.verify_error] if live.plan.staging else [],
    }
