"""The job kinds backups registers with the engine (provisioning.kinds), from BackupsConfig.ready()."""

from django.conf import settings

from backups.services import backup, restore, restore_export, verify
from provisioning.kinds import JobKind, Step
from stores.models import Store

LIVE_OR_STOPPED = frozenset({Store.Status.ACTIVE, Store.Status.SUSPENDED})

KINDS = (
    JobKind(
        name=backup.KIND,
        title="Back up",
        steps=(
            Step("database", "Copy the database", backup.step_database, with_job=True),
            Step("files", "Copy the files", backup.step_files, with_job=True),
            Step("snapshot", "Store the backup", backup.step_snapshot, with_job=True),
        ),
        store_statuses=LIVE_OR_STOPPED,
        queue="backups",
        timeout_seconds=lambda: settings.RESTIC_TIMEOUT + 600,
        on_start=backup.on_start,
        on_success=backup.on_success,
        on_failure=backup.on_failure,
        after=backup.after,
        retry=backup.retry,
    ),
    JobKind(
        name=restore.KIND,
        title="Restore",
        steps=(
            Step(restore.PRE_BACKUP_STEP, "Back up the store as it is now", restore.step_pre_backup, with_job=True),
            Step("stop", "Stop the store", restore.step_stop, with_job=True),
            Step(restore.EXPORT_STEP, "Keep what changed since the backup", restore.step_export, with_job=True),
            Step("database", "Restore the database", restore.step_database, with_job=True),
            Step("files", "Restore the files", restore.step_files, with_job=True),
            Step("start", "Start the store", restore.step_start, with_job=True),
            Step("check", "Check that the store answers", restore.step_check, with_job=True),
        ),
        store_statuses=LIVE_OR_STOPPED,
        queue="backups",
        timeout_seconds=lambda: 3 * settings.RESTIC_TIMEOUT + settings.STORE_WEB_READY_TIMEOUT + 1200,
        on_start=restore.on_start,
        on_success=restore.on_success,
        on_failure=restore.on_failure,
        after=restore.after,
        retry=restore.retry,
    ),
    JobKind(
        name=restore_export.KIND,
        title="Find what changed since a backup",
        steps=(
            Step("find", "Find what changed since the backup", restore_export.step_find, with_job=True),
            Step("export", "Export it for you to download", restore_export.step_export, with_job=True),
        ),
        store_statuses=LIVE_OR_STOPPED,
        queue="backups",
        timeout_seconds=lambda: settings.RESTIC_TIMEOUT + 600,
        on_start=restore_export.on_start,
        on_success=restore_export.on_success,
        on_failure=restore_export.on_failure,
        after=restore_export.after,
        retry=restore_export.retry,
    ),
    JobKind(
        name=verify.KIND,
        title="Check a backup restores",
        steps=(
            Step("copy", "Restore the backup into a throwaway copy", verify.step_copy, with_job=True),
            Step("rows", "Compare every table with the backup", verify.step_rows, with_job=True),
            Step("front_page", "Check the copy's front page", verify.step_front_page, with_job=True),
        ),
        store_statuses=LIVE_OR_STOPPED,
        queue="backups",
        timeout_seconds=verify.timeout_seconds,
        on_success=verify.on_success,
        on_failure=verify.on_failure,
        after=verify.after,
        retry=verify.retry,
    ),
)
