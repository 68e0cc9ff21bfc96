"""The `backup` job kind: a restic snapshot of one store (its database dump, its file volumes as the engine's
archives, and store.json), and the requests for one: manual, scheduled, and the final backup when a
subscription ends. The same three step functions take a restore's pre-restore backup (services.restore)."""

import json
import logging
import shutil

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from backups import restic
from backups.models import ACTIVE_STATUSES, BackupEvent, BackupRun, RunStatus
from backups.services.file_restore import file_lists_record
from backups.services.records import BackupConflict, run_transition, store_tags
from backups.services.stack_io import (
    DB_DUMP,
    database_dump,
    database_running,
    database_start,
    database_stop,
    staging_directory,
    staging_path,
    volumes_archive,
    web_volumes,
)
from provisioning.exceptions import JobConflict
from provisioning.kinds import Log
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue
from stores.exceptions import InvalidTransition
from stores.models import Store

logger = logging.getLogger(__name__)
Kind = BackupRun.Kind
KIND = "backup"  # the job kind (backups.kinds)
DATABASE_STARTED_HERE = "database-started-here"  # a marker in the staging directory


def _staging_name(run: BackupRun) -> str:
    return f"backup-{run.pk}"


# --- The steps: shared by the backup kind and a restore's pre-restore backup ---------------------------------


def backup_database(run: BackupRun, store: Store, log: Log) -> None:
    staging = staging_directory(_staging_name(run))
    if not database_running(store):
        database_start(store)  # a suspended store: stopped again once the backup has ended
        (staging / DATABASE_STARTED_HERE).touch()
        log("the store is stopped: its database was started for the dump")
    size = database_dump(store, staging / DB_DUMP)
    BackupRun.objects.filter(pk=run.pk).update(database_bytes=size)
    log(f"database dumped ({size} bytes)")


def backup_files(run: BackupRun, store: Store, log: Log) -> None:
    files = staging_path(_staging_name(run)) / "files"
    suffixes = volumes_archive(store, files)
    log(f"files copied: {', '.join(suffixes) or 'no volumes'}")
    # What the merchant browses to restore one file or folder (services/file_restore.py), without restic.
    entries = file_lists_record(run, files, web_volumes(store))
    log(f"file list kept: {entries} entries")


def backup_snapshot(run: BackupRun, store: Store, log: Log) -> None:
    staging = staging_path(_staging_name(run))
    (staging / "store.json").write_text(
        json.dumps(
            {
                "store": store.pk,
                "customer": store.customer_id,
                "domain": store.domain,
                "platform": store.platform,
                "plan": store.plan.slug,
                "volumes": web_volumes(store),
                "backup_kind": run.kind,
            },
            indent=2,
        )
    )
    restic.repository_init()
    summary = restic.backup([DB_DUMP, "files", "store.json"], cwd=staging, tags=[*store_tags(store), run.kind])
    BackupRun.objects.filter(pk=run.pk).update(
        snapshot_id=summary.snapshot_id, size_bytes=summary.total_bytes, added_bytes=summary.data_added_bytes
    )
    log(f"snapshot {summary.snapshot_id[:8]} stored ({summary.total_bytes} bytes, {summary.data_added_bytes} new)")


def backup_clean_up(run: BackupRun, store: Store) -> None:
    """Remove the staging directory, and stop again a database the dump started."""
    staging = staging_path(_staging_name(run))
    started_here = (staging / DATABASE_STARTED_HERE).exists()
    shutil.rmtree(staging, ignore_errors=True)
    if started_here:
        database_stop(store)


# --- The kind's hooks -------------------------------------------------------------------------------------


def _run_of(job_id: int) -> BackupRun:
    return BackupRun.objects.get(job_id=job_id, kind__in=[k for k in Kind.values if k not in BackupRun.BEFORE_A_CHANGE])


def _step(function):
    def run(store: Store, log: Log, *, job_id: int) -> None:
        function(_run_of(job_id), store, log)

    return run


step_database, step_files, step_snapshot = _step(backup_database), _step(backup_files), _step(backup_snapshot)


def on_start(job_id: int) -> None:
    run_started(_run_of(job_id))


def _seconds_since_start(run: BackupRun, now) -> float | None:
    return (now - run.started_at).total_seconds() if run.started_at else None


def run_started(run: BackupRun) -> BackupRun:
    return run_transition(BackupRun, run.pk, RunStatus.RUNNING, started_at=timezone.now())


def run_succeeded(run: BackupRun) -> BackupRun:
    run = BackupRun.objects.get(pk=run.pk)  # the snapshot the steps recorded
    now = timezone.now()
    return run_transition(
        BackupRun,
        run.pk,
        RunStatus.SUCCEEDED,
        note=f"snapshot {run.snapshot_id[:8]}",
        finished_at=now,
        duration_seconds=_seconds_since_start(run, now),
    )


def run_failed(run: BackupRun, summary: str) -> None:
    run = BackupRun.objects.get(pk=run.pk)
    if run.status not in ACTIVE_STATUSES:
        return
    now = timezone.now()
    run_transition(
        BackupRun,
        run.pk,
        RunStatus.FAILED,
        note=summary,
        error=summary[:10000],
        finished_at=now,
        duration_seconds=_seconds_since_start(run, now),
    )


def on_success(job_id: int) -> None:
    run = run_succeeded(_run_of(job_id))
    if run.kind == Kind.FINAL:
        _final_backup_done(run.store_id)


def on_failure(job_id: int, summary: str) -> None:
    run_failed(_run_of(job_id), summary)


def after(job_id: int, succeeded: bool) -> None:
    run = _run_of(job_id)
    backup_clean_up(run, Store.objects.select_related("host").get(pk=run.store_id))


def retry(job_id: int, actor: User | None) -> ProvisioningJob:
    run = _run_of(job_id)
    return backup_enqueue(store_id=run.store_id, kind=run.kind, actor=actor).job


# --- Requests ---------------------------------------------------------------------------------------------


def backup_enqueue(*, store_id: int, kind: str, actor: User | None = None) -> BackupRun:
    """Queue a backup of one store as a job; BackupConflict while another operation on the store runs, or
    when the store is in no state to be backed up (never set up, being deleted)."""
    with transaction.atomic():
        try:
            job = job_enqueue(store_id=store_id, kind=KIND, actor=actor)
        except JobConflict as exc:
            raise BackupConflict(str(exc)) from None
        except InvalidTransition:
            store = Store.objects.get(pk=store_id)
            raise BackupConflict(
                f"The store is {store.get_status_display().lower()}; it cannot be backed up now."
            ) from None
        run = BackupRun.objects.create(store_id=store_id, kind=kind, created_by=actor, job=job)
        BackupEvent.objects.create(backup_run=run, new_status=run.status, note=f"{kind} backup requested")
    return run


def first_backup_take(*, store_id: int) -> BackupRun | None:
    """A new store's first backup, FIRST_BACKUP_DELAY_SECONDS after it went live (backups.handlers): queued
    unless a backup was asked for meanwhile (the scheduled run, its owner, staff) or the store is no longer
    active (suspended, deleted). A store busy now is left to the scheduled run, which takes every active store
    with no backup, as when it is busy at the moment it goes live."""
    store = Store.objects.filter(pk=store_id).first()
    if store is None or store.status != Store.Status.ACTIVE:
        logger.info("store %s: no first backup, the store is %s", store_id, store.status if store else "gone")
        return None
    if store.backup_runs.exclude(status=RunStatus.FAILED).exclude(kind__in=BackupRun.BEFORE_A_CHANGE).exists():
        return None  # as backups_enqueue_due counts: a backup before a change is not the store's schedule
    try:
        return backup_enqueue(store_id=store_id, kind=Kind.SCHEDULED)
    except BackupConflict as exc:
        logger.info("store %s: first backup left to the scheduled run (%s)", store_id, exc)
        return None


def _final_backup_done(store_id: int) -> None:
    """A canceled store is stopped once its final backup is safe (in the transaction that ends the backup's
    job, so the store is free for it)."""
    try:
        job_enqueue(store_id=store_id, kind=ProvisioningJob.Kind.SUSPEND)
    except (JobConflict, InvalidTransition) as exc:
        logger.info("store %s not stopped after its final backup: %s", store_id, exc)


def final_backup_request(*, store_id: int) -> BackupRun | None:
    """When a subscription ends: back the store up one last time; the store is stopped when that succeeded.

    A store that never went live has nothing to back up and returns None."""
    store = Store.objects.get(pk=store_id)
    if _never_live(store):
        return None
    try:
        return backup_enqueue(store_id=store_id, kind=Kind.FINAL)
    except BackupConflict:
        # Another operation runs now: the store is stopped without it, and subscriptions_teardown_due asks for
        # the final backup again before it tears anything down.
        return None


def _never_live(store: Store) -> bool:
    """A store that never went live holds nothing of the merchant's: it was never placed on a host, or its
    provisioning failed before it first answered (perhaps before its database container existed). A final
    backup of it could only fail, and would hold its teardown (and its port and volumes) for ever."""
    return store.host_id is None or not store.events.filter(new_status=Store.Status.ACTIVE).exists()


def store_has_final_backup(store: Store) -> bool:
    return _never_live(store) or store.backup_runs.filter(kind=Kind.FINAL, status=RunStatus.SUCCEEDED).exists()
