"""The `restore` job kind: a store's database, files or both put back from one of its snapshots, after a
pre-restore backup (the same steps as the `backup` kind) that undoes it. And the restore request, also into a
new store from a deleted store's final backup."""

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from backups import restic
from backups.models import ACTIVE_STATUSES, BackupEvent, BackupRun, RestoreExport, RestoreRun, RunStatus
from backups.services.backup import (
    backup_clean_up,
    backup_database,
    backup_files,
    backup_snapshot,
    run_failed,
    run_started,
    run_succeeded,
)
from backups.services.records import (
    BackupConflict,
    RepositoryUnavailable,
    SnapshotNotFound,
    run_transition,
    snapshot_for_store,
)
from backups.services.restore_export import export_for_restore, export_for_restore_request
from backups.services.stack_io import (
    DB_DUMP,
    database_import,
    database_running,
    database_start,
    staging_directory,
    staging_path,
    volume_restore,
    web_volumes,
)
from provisioning.exceptions import JobConflict
from provisioning.kinds import Log
from provisioning.models import JobStep, ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.services import job_enqueue, job_execute
from provisioning.stacks import stack_for
from provisioning.steps import app_stop, containers_start, containers_stop, wait_http
from stores.exceptions import InvalidTransition
from stores.models import Store
from stores.services import store_create

logger = logging.getLogger(__name__)
Kind = BackupRun.Kind
KIND = "restore"  # the job kind (backups.kinds)
PRE_BACKUP_STEP = "pre_backup"
EXPORT_STEP = "export"


def _restore_of(job_id: int) -> RestoreRun:
    return RestoreRun.objects.get(job_id=job_id)


def _staging_name(restore: RestoreRun) -> str:
    return f"restore-{restore.pk}"


# --- The steps --------------------------------------------------------------------------------------------


def step_pre_backup(store: Store, log: Log, *, job_id: int) -> None:
    """A snapshot of the store as it is now, in place (never queued on its own): if it fails, nothing was
    changed and the restore stops here."""
    restore = _restore_of(job_id)
    staging_directory(_staging_name(restore))
    pre = backup_in_place(
        store,
        log,
        kind=Kind.PRE_RESTORE,
        created_by=restore.created_by,
        job_id=job_id,
        note=f"before restore {restore.pk}",
        what="restore",
        link=lambda run: RestoreRun.objects.filter(pk=restore.pk).update(pre_restore_backup=run),
    )
    log(f"snapshot {pre.snapshot_id[:8]} keeps the store as it was")


def backup_in_place(
    store: Store,
    log: Log,
    *,
    kind: str,
    created_by: User | None,
    job_id: int,
    note: str,
    what: str,
    link: Callable[[BackupRun], object] | None = None,
) -> BackupRun:
    """A backup taken by another job's step before it changes the store (a restore, an update), with the
    backup kind's own steps: a BackupRun of `kind` in the merchant's list, linked to that job. `link(run)`
    runs in the transaction that creates the run. Raises ResticError ("nothing was changed") if it fails."""
    # Before the dump, which would otherwise stop a stopped database again right after it.
    if not database_running(store):
        database_start(store)
        log(f"the store is stopped: its database was started for the {what}")
    with transaction.atomic():
        pre = BackupRun.objects.create(store=store, kind=kind, created_by=created_by, job_id=job_id)
        BackupEvent.objects.create(backup_run=pre, new_status=pre.status, note=note)
        if link is not None:
            link(pre)
    run_started(pre)
    try:
        backup_database(pre, store, log)
        backup_files(pre, store, log)
        backup_snapshot(pre, store, log)
    except Exception as exc:
        run_failed(pre, f"{type(exc).__name__}: {exc}")
        raise restic.ResticError(f"the backup before the {what} failed, nothing was changed: {exc}") from exc
    finally:
        backup_clean_up(pre, store)
    return run_succeeded(pre)


def step_stop(store: Store, log: Log, *, job_id: int) -> None:
    app_stop(store, log)


def step_export(store: Store, log: Log, *, job_id: int) -> None:
    """The rows the database restore is about to replace, exported once more now that the store is offline
    (nothing can be written any more): the merchant downloads them afterwards. If this fails, the restore
    stops before anything was replaced."""
    export = export_for_restore(store, log, restore=_restore_of(job_id))
    log(f"{export.summary}: kept for download" if export.downloadable else export.summary)


def step_database(store: Store, log: Log, *, job_id: int) -> None:
    restore = _restore_of(job_id)
    database_put_back(store, log, snapshot_id=restore.snapshot_id, staging=staging_path(_staging_name(restore)))


def step_files(store: Store, log: Log, *, job_id: int) -> None:
    restore = _restore_of(job_id)
    files_put_back(store, log, snapshot_id=restore.snapshot_id, staging=staging_path(_staging_name(restore)))


def database_put_back(store: Store, log: Log, *, snapshot_id: str, staging: Path) -> None:
    """The store's database becomes the snapshot's (the database container runs; the app is stopped)."""
    dump = staging / DB_DUMP
    restic.dump(snapshot_id, f"/{DB_DUMP}", into=dump)
    log(f"dump read from the snapshot ({dump.stat().st_size} bytes)")
    database_import(container=stack_for(store).container_name("db"), dump=dump, base_url=store.host.engine)
    log("database replaced by the snapshot's")


def files_put_back(
    store: Store, log: Log, *, snapshot_id: str, staging: Path, rewrite: Callable[[Path, str], None] | None = None
) -> None:
    """Each web volume holds exactly the snapshot's files (the app is stopped); `rewrite` as volume_restore's."""
    stack = stack_for(store)
    for suffix, mount in web_volumes(store).items():
        volume_restore(
            snapshot_id=snapshot_id,
            suffix=suffix,
            mount=mount,
            volume=stack.volume_name(suffix),
            staging=staging,
            labels={**stack.labels, "shophosting.role": "restore-helper"},
            base_url=store.host.engine,
            rewrite=rewrite,
        )
        log(f"{suffix}: files replaced by the snapshot's")


def step_start(store: Store, log: Log, *, job_id: int) -> None:
    """Start a live store; a suspended one stays stopped, still suspended (decided on the store read afresh)."""
    if store.status == Store.Status.ACTIVE:
        containers_start(store, log)
    else:
        containers_stop(store, log)
        log("the store is not live, so it stays stopped")


def step_check(store: Store, log: Log, *, job_id: int) -> None:
    if store.status == Store.Status.ACTIVE:
        wait_http(store, log, timeout=settings.STORE_WEB_READY_TIMEOUT)
    else:
        log("the store is not live: nothing to check")


# --- The kind's hooks -------------------------------------------------------------------------------------


def on_start(job_id: int) -> None:
    run_transition(RestoreRun, _restore_of(job_id).pk, RunStatus.RUNNING, started_at=timezone.now())


def on_success(job_id: int) -> None:
    run_transition(RestoreRun, _restore_of(job_id).pk, RunStatus.SUCCEEDED, finished_at=timezone.now())


def on_failure(job_id: int, summary: str) -> None:
    restore = _restore_of(job_id)
    if restore.status in ACTIVE_STATUSES:
        run_transition(
            RestoreRun, restore.pk, RunStatus.FAILED, note=summary, error=summary[:10000], finished_at=timezone.now()
        )
    if restore.pre_restore_backup_id:
        run_failed(restore.pre_restore_backup, "its restore stopped")


def after(job_id: int, succeeded: bool) -> None:
    """Remove the staging directory; after a failure, never leave a live store down nor a suspended one
    running (the pre-restore snapshot undoes a partial restore)."""
    restore = _restore_of(job_id)
    shutil.rmtree(staging_path(_staging_name(restore)), ignore_errors=True)
    if succeeded:
        return
    store = Store.objects.select_related("host", "plan", "customer").get(pk=restore.store_id)
    failed_first = JobStep.objects.filter(job_id=job_id, name=PRE_BACKUP_STEP, status=JobStep.Status.FAILED).exists()
    if store.status == Store.Status.ACTIVE and not failed_first:
        containers_start(store, lambda message: None)
    elif store.status != Store.Status.ACTIVE:
        containers_stop(store, lambda message: None)


def retry(job_id: int, actor: User | None) -> ProvisioningJob:
    restore = _restore_of(job_id)
    return restore_request(
        store_id=restore.store_id, snapshot_id=restore.snapshot_id, scope=restore.scope, actor=actor
    ).job


# --- Requests ---------------------------------------------------------------------------------------------


# Steps a restore of each scope does not need.
SCOPE_SKIPS = {
    RestoreRun.Scope.DATABASE: {"files": "only the database is restored"},
    RestoreRun.Scope.FILES: {"database": "only the files are restored", EXPORT_STEP: "the database is kept as it is"},
    RestoreRun.Scope.ALL: {},
}


def _skips(scope: str, from_another_store: bool) -> dict[str, str]:
    """The steps a restore does not need: by its scope, and the export when the snapshot is another store's
    (a deleted store's final backup into a new store, whose database holds nothing of its own yet)."""
    if from_another_store:
        return {**SCOPE_SKIPS[scope], EXPORT_STEP: "a new store: nothing of its own to keep"}
    return SCOPE_SKIPS[scope]


def restore_request(
    *,
    store_id: int,
    snapshot_id: str,
    scope: str,
    actor: User | None = None,
    source_store_id: int | None = None,
    export_id: int | None = None,
) -> RestoreRun:
    """Queue a restore after checking that the snapshot is this store's (or, for staff commands only, the
    `source_store_id`'s, e.g. a deleted store's final backup). Refused while another operation runs.

    `export_id`: the RestoreExport whose summary the merchant read before confirming (the customer page
    requires one for a restore of the database); it must be this store's and snapshot's, finished and not
    used before (ExportNotReady), and the restore's job exports into it again once the store is offline."""
    if scope not in RestoreRun.Scope.values:
        raise ValueError(f"unknown restore scope {scope!r}")
    if scope == RestoreRun.Scope.FILES:
        export_id = None  # a files-only restore keeps every row
    if export_id is not None:
        with transaction.atomic():  # refused before restic is asked anything
            export_for_restore_request(store_id=store_id, snapshot_id=snapshot_id, export_id=export_id)
    source = Store.objects.get(pk=source_store_id or store_id)
    try:
        snapshot = snapshot_for_store(store=source, snapshot_id=snapshot_id)
    except restic.ResticError as exc:
        logger.warning("restore of store %s refused: the repository did not answer: %s", store_id, exc)
        raise RepositoryUnavailable(
            "The backup storage did not answer, so nothing was changed. Try again in a few minutes."
        ) from exc
    with transaction.atomic():
        try:
            job = job_enqueue(store_id=store_id, kind=KIND, actor=actor, skip=_skips(scope, source.pk != store_id))
        except JobConflict as exc:
            raise BackupConflict(str(exc)) from None
        except InvalidTransition:
            store = Store.objects.get(pk=store_id)
            raise BackupConflict(
                f"The store is {store.get_status_display().lower()}; it cannot be restored now."
            ) from None
        run = RestoreRun.objects.create(
            store_id=store_id, snapshot_id=snapshot["id"], scope=scope, created_by=actor, job=job
        )
        BackupEvent.objects.create(restore_run=run, new_status=run.status, note=f"restore {scope} requested")
        if export_id is not None:
            export = export_for_restore_request(store_id=store_id, snapshot_id=snapshot["id"], export_id=export_id)
            RestoreExport.objects.filter(pk=export.pk).update(restore_run=run)
    return run


def final_backup_restore_into_new_store(*, old_store_id: int, domain: str, actor: User | None = None) -> RestoreRun:
    """Bring a deleted store back from its final backup: a new store for the same customer and plan is built,
    then the final snapshot (database and files) is restored into it. Runs in the caller's process."""
    old = Store.objects.select_related("plan", "customer").get(pk=old_store_id)
    final = old.backup_runs.filter(kind=Kind.FINAL, status=RunStatus.SUCCEEDED, forgotten_at=None).first()
    if final is None:
        raise SnapshotNotFound(f"store {old.pk} has no final backup that is still kept")
    new = store_create(customer=old.customer, plan=old.plan, domain=domain, site_title=old.site_title, actor=actor)
    job = store_order_paid(store_id=new.pk, actor=actor)
    job_execute(job_id=job.pk)
    new.refresh_from_db()
    if new.status != Store.Status.ACTIVE:
        raise BackupConflict(f"the new store {new.pk} could not be built: {new.status_message}")
    run = restore_request(
        store_id=new.pk, snapshot_id=final.snapshot_id, scope=RestoreRun.Scope.ALL, actor=actor, source_store_id=old.pk
    )
    job_execute(job_id=run.job_id)
    return RestoreRun.objects.get(pk=run.pk)
