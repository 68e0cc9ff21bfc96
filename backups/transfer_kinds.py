"""The job kinds that take a store's data away and bring a store in (backups/README.md, "Downloads and
imports"), registered with the engine (provisioning.kinds) from BackupsConfig.ready() next to backups.kinds."""

from django.conf import settings

from backups.services import download, file_restore, store_import
from provisioning.kinds import JobKind, Step
from stores.models import Store

KINDS = (
    JobKind(
        name=download.KIND,
        title="Prepare a download",
        steps=(
            Step("read", "Read the backup", download.step_read, with_job=True),
            Step("pack", "Pack the database and the files", download.step_pack, with_job=True),
        ),
        # Reads the repository only; the job still holds the store so that a restore or an import never
        # runs at once with it (one operation per store).
        store_statuses=frozenset({Store.Status.ACTIVE, Store.Status.SUSPENDED}),
        queue="backups",
        timeout_seconds=lambda: settings.RESTIC_TIMEOUT + 600,
        on_start=download.on_start,
        on_success=download.on_success,
        on_failure=download.on_failure,
        after=download.after,
        retry=download.retry,
    ),
    JobKind(
        name=store_import.KIND,
        title="Import a store",
        steps=(
            Step("check", "Check the uploaded files", store_import.step_check, with_job=True),
            Step(
                store_import.PRE_BACKUP_STEP,
                "Back up the store as it is now",
                store_import.step_pre_backup,
                with_job=True,
            ),
            Step("stop", "Stop the store", store_import.step_stop, with_job=True),
            Step("database", "Import the database", store_import.step_database, with_job=True),
            Step("files", "Import the files", store_import.step_files, with_job=True),
            Step("start", "Start the store", store_import.step_start, with_job=True),
            Step("answers", "Check that the store answers", store_import.step_answers, with_job=True),
        ),
        undo=Step("put_back", "Put the store back as it was", store_import.step_put_back, with_job=True),
        store_statuses=frozenset({Store.Status.ACTIVE}),
        queue="backups",
        timeout_seconds=lambda: 3 * settings.RESTIC_TIMEOUT + 2 * settings.STORE_WEB_READY_TIMEOUT + 600,
        on_start=store_import.on_start,
        on_success=store_import.on_success,
        on_failure=store_import.on_failure,
        after=store_import.after,
        retry=store_import.retry,
    ),
    JobKind(
        name=file_restore.KIND,
        title="Restore a file or folder",
        steps=(
            Step("read", "Read the files from the backup", file_restore.step_read, with_job=True),
            Step("put", "Put them back into the store", file_restore.step_put, with_job=True),
        ),
        store_statuses=frozenset({Store.Status.ACTIVE, Store.Status.SUSPENDED}),
        queue="backups",
        timeout_seconds=lambda: settings.RESTIC_TIMEOUT + 600,
        on_start=file_restore.on_start,
        on_success=file_restore.on_success,
        on_failure=file_restore.on_failure,
        after=file_restore.after,
        retry=file_restore.retry,
    ),
)
