"""Store backups and restores. One snapshot holds the store's database dump (db.sql), its file volumes
(files/<volume>.tar, as the engine's archives, so ownership survives) and store.json.

Runs are queued under the store's row lock, so two never overlap; the work happens in the `backups`
queue's worker with no transaction held across Docker or restic calls. Only `restic.py` runs restic and
only `provisioning.docker_client` talks to Docker.
"""

import json
import logging
import os
import re
import shutil
import tarfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from backups import jobs, restic
from backups.models import ACTIVE_STATUSES, RUN_ALLOWED_FROM, BackupEvent, BackupRun, RestoreRun, RunStatus
from provisioning import docker_client, liveness
from provisioning.stacks import stack_for
from shophosting.core.queues import enqueue_recorded
from shophosting.core.transitions import transition
from stores.exceptions import StoreBusy
from stores.models import Store
from stores.operations import store_lock_for_operation

logger = logging.getLogger(__name__)
Kind = BackupRun.Kind
DB_DUMP = "db.sql"
# Dumps inside the store's database container, reading the credentials from the container's own
# environment (the official image's contract), so no password appears in any command line.
DUMP_COMMAND = [
    "sh",
    "-c",
    'exec mariadb-dump --single-transaction --quick --routines --triggers --events -uroot -p"$MARIADB_ROOT_PASSWORD" '
    '"$MARIADB_DATABASE"',
]
IMPORT_COMMAND = [
    "sh",
    "-c",
    'set -e; mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" -e "DROP DATABASE IF EXISTS \\`$MARIADB_DATABASE\\`; '
    'CREATE DATABASE \\`$MARIADB_DATABASE\\`"; mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" "$MARIADB_DATABASE" '
    "< /tmp/shophosting-restore.sql; rm -f /tmp/shophosting-restore.sql",
]


class BackupConflict(StoreBusy):
    """Another operation on this store (a backup, a restore, a provisioning job) is queued or running."""


class SnapshotNotFound(Exception):
    """The snapshot id is malformed, unknown, or belongs to another store."""


class RepositoryUnavailable(Exception):
    """restic could not answer (the repository is locked, unreachable or broken); nothing was changed."""


def store_tags(store: Store) -> list[str]:
    return [f"store-{store.pk}", f"customer-{store.customer_id}"]


def _transition(model, run_id: int, to: str, *, note: str = "", **fields):
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


def store_active_run(store_id: int) -> str | None:
    """This app's active operations on a store, for stores.operations (registered in apps.py)."""
    running = BackupRun.objects.filter(store_id=store_id, status__in=ACTIVE_STATUSES).first()
    if running:
        return f"A backup of this store is already {running.status} (since {running.created_at:%H:%M} UTC)."
    restoring = RestoreRun.objects.filter(store_id=store_id, status__in=ACTIVE_STATUSES).first()
    if restoring:
        return f"A restore of this store is already {restoring.status} (since {restoring.created_at:%H:%M} UTC)."
    return None


def _lock_store(store_id: int) -> Store:
    """The store's row, locked, once no other operation on it (of any app) is active."""
    try:
        return store_lock_for_operation(store_id=store_id)
    except StoreBusy as exc:
        raise BackupConflict(str(exc)) from None


def backup_enqueue(*, store_id: int, kind: str, actor: User | None = None) -> BackupRun:
    """Queue a backup of one store; refused with BackupConflict while another backup or restore runs."""
    with transaction.atomic():
        store = _lock_store(store_id)
        run = BackupRun.objects.create(store=store, kind=kind, created_by=actor)
        BackupEvent.objects.create(backup_run=run, new_status=run.status, note=f"{kind} backup requested")
        transaction.on_commit(lambda: _rq_enqueue(jobs.backup_run_job, run.pk, f"backup-{run.pk}"))
    return run


def _rq_enqueue(function, run_id: int, job_id: str) -> None:
    enqueue_recorded(
        queue="backups", function=function, args=(run_id,), job_id=job_id, job_timeout=settings.RESTIC_TIMEOUT + 600
    )


def _claim(model, run_id: int):
    with transaction.atomic():
        run = model.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.QUEUED:
            return None
        return _transition(model, run_id, RunStatus.RUNNING, started_at=timezone.now())


def _staging(name: str) -> Path:
    path = Path(settings.BACKUP_STAGING_DIR) / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    return path


def _web_volumes(store: Store) -> dict[str, str]:
    """volume suffix -> mount path of every volume the web service keeps its files in."""
    web = next(s for s in stack_for(store).services() if s.role == "web")
    return dict(web.volumes)


def _ensure_db_running(store: Store) -> bool:
    """Start a stopped database container (a suspended store) for the dump; True if it was started here."""
    name = stack_for(store).container_name("db")
    status, _ = docker_client.container_state(name=name, base_url=store.host.docker_url)
    if status == "running":
        return False
    docker_client.container_start(name=name, base_url=store.host.docker_url)
    from provisioning.steps import wait_db

    wait_db(store, lambda message: None, timeout=120)
    return True


def _backup_failed(run: BackupRun, exc: BaseException, *, started: float) -> BackupRun:
    return _transition(
        BackupRun,
        run.pk,
        RunStatus.FAILED,
        note=str(exc),
        error=f"{type(exc).__name__}: {exc}"[:10000],
        finished_at=timezone.now(),
        duration_seconds=time.monotonic() - started,
    )


def _backup_succeeded(
    run: BackupRun, summary: restic.BackupSummary, *, started: float, database_bytes: int | None
) -> BackupRun:
    return _transition(
        BackupRun,
        run.pk,
        RunStatus.SUCCEEDED,
        note=f"snapshot {summary.snapshot_id[:8]}",
        snapshot_id=summary.snapshot_id,
        size_bytes=summary.total_bytes,
        added_bytes=summary.data_added_bytes,
        database_bytes=database_bytes,
        finished_at=timezone.now(),
        duration_seconds=time.monotonic() - started,
    )


def backup_execute(*, run_id: int) -> BackupRun | None:
    """Dump the database, copy the file volumes, and store all of it as one restic snapshot.

    The worker holds the run's liveness lock meanwhile (provisioning.liveness), so `runs_recover` fails the
    run, and frees its store, within a minute of the worker dying instead of after the restic timeout."""
    with liveness.operation_hold(key=f"backup.{run_id}") as held:
        return _backup_execute_held(run_id) if held else None


def _backup_execute_held(run_id: int) -> BackupRun | None:
    run = _claim(BackupRun, run_id)
    if run is None:
        return None
    store = Store.objects.select_related("host", "plan").get(pk=run.store_id)
    staging = _staging(f"backup-{run.pk}")
    started = time.monotonic()
    db_started_here = False
    try:
        restic.repository_init()
        stack = stack_for(store)
        db_started_here = _ensure_db_running(store)
        database_bytes = docker_client.container_exec_to_file(
            name=stack.container_name("db"),
            command=DUMP_COMMAND,
            path=str(staging / DB_DUMP),
            base_url=store.host.docker_url,
        )
        (staging / "files").mkdir()
        for suffix, mount in _web_volumes(store).items():
            docker_client.container_archive_get(
                name=stack.container_name("web"),
                path=mount,
                tar_path=str(staging / "files" / f"{suffix}.tar"),
                base_url=store.host.docker_url,
            )
        (staging / "store.json").write_text(
            json.dumps(
                {
                    "store": store.pk,
                    "customer": store.customer_id,
                    "domain": store.domain,
                    "platform": store.platform,
                    "plan": store.plan.slug,
                    "volumes": _web_volumes(store),
                    "backup_kind": run.kind,
                },
                indent=2,
            )
        )
        summary = restic.backup([DB_DUMP, "files", "store.json"], cwd=staging, tags=[*store_tags(store), run.kind])
    except Exception as exc:
        logger.exception("backup %s of store %s failed", run.pk, store.pk)
        return _backup_failed(run, exc, started=started)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if db_started_here:
            docker_client.container_stop(name=stack_for(store).container_name("db"), base_url=store.host.docker_url)
    run = _backup_succeeded(run, summary, started=started, database_bytes=database_bytes)
    if run.kind == Kind.FINAL:
        _final_backup_done(store)
    return run


def _final_backup_done(store: Store) -> None:
    """A canceled store is stopped once its final backup is safe."""
    from provisioning.exceptions import JobConflict
    from provisioning.models import ProvisioningJob
    from provisioning.services import job_enqueue
    from stores.exceptions import InvalidTransition

    try:
        job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.SUSPEND)
    except (JobConflict, InvalidTransition) as exc:
        logger.info("store %s not stopped after its final backup: %s", store.pk, exc)


def final_backup_request(*, store_id: int) -> BackupRun | None:
    """When a subscription ends: back the store up one last time; the store is stopped when that succeeded.

    A store that never went live has nothing to back up and returns None."""
    store = Store.objects.get(pk=store_id)
    if _never_live(store):
        return None
    try:
        return backup_enqueue(store_id=store_id, kind=Kind.FINAL)
    except BackupConflict:
        # A backup is running now: the store is stopped without it, and subscriptions_teardown_due asks for
        # the final backup again before it tears anything down.
        return None


def _never_live(store: Store) -> bool:
    """A store that never went live holds nothing of the merchant's: it was never placed on a host, or its
    provisioning failed before it first answered (perhaps before its database container existed). A final
    backup of it could only fail, and would hold its teardown (and its port and volumes) for ever."""
    return store.host_id is None or not store.events.filter(new_status=Store.Status.ACTIVE).exists()


def store_has_final_backup(store: Store) -> bool:
    return _never_live(store) or store.backup_runs.filter(kind=Kind.FINAL, status=RunStatus.SUCCEEDED).exists()


# --- Restores ---------------------------------------------------------------------------------------------


def snapshot_for_store(*, store: Store, snapshot_id: str) -> dict:
    """The restic snapshot `snapshot_id` (full or short id) if it is this store's; else SnapshotNotFound.

    Malformed ids never reach restic."""
    if not restic.SNAPSHOT_ID.match(snapshot_id or ""):
        raise SnapshotNotFound("not a snapshot id")
    for snapshot in restic.snapshots(tags=[f"store-{store.pk}"]):
        if snapshot_id in (snapshot["id"], snapshot.get("short_id")):
            return snapshot
    raise SnapshotNotFound(f"snapshot {snapshot_id} is not one of store {store.pk}'s")


def restore_request(
    *, store_id: int, snapshot_id: str, scope: str, actor: User | None = None, source_store_id: int | None = None
) -> RestoreRun:
    """Queue a restore after checking that the snapshot is this store's (or, for staff commands only, the
    `source_store_id`'s, e.g. a deleted store's final backup). Refused while a backup or restore runs."""
    if scope not in RestoreRun.Scope.values:
        raise ValueError(f"unknown restore scope {scope!r}")
    source = Store.objects.get(pk=source_store_id or store_id)
    try:
        snapshot = snapshot_for_store(store=source, snapshot_id=snapshot_id)
    except restic.ResticError as exc:
        logger.warning("restore of store %s refused: the repository did not answer: %s", store_id, exc)
        raise RepositoryUnavailable(
            "The backup storage did not answer, so nothing was changed. Try again in a few minutes."
        ) from exc
    with transaction.atomic():
        store = _lock_store(store_id)
        if store.status not in (Store.Status.ACTIVE, Store.Status.SUSPENDED):
            raise BackupConflict(f"The store is {store.get_status_display().lower()}; it cannot be restored now.")
        run = RestoreRun.objects.create(store=store, snapshot_id=snapshot["id"], scope=scope, created_by=actor)
        BackupEvent.objects.create(restore_run=run, new_status=run.status, note=f"restore {scope} requested")
        transaction.on_commit(lambda: _rq_enqueue(jobs.restore_run_job, run.pk, f"restore-{run.pk}"))
    return run


def _restore_log(run_id: int, step: str, message: str) -> None:
    stamp = timezone.now().strftime("%H:%M:%S")
    with transaction.atomic():
        run = RestoreRun.objects.select_for_update().get(pk=run_id)
        run.step = step
        run.log = f"{run.log}{stamp} [{step}] {message}\n"[-50_000:]
        run.save(update_fields=["step", "log"])


def _tar_single_file(source: Path, arcname: str, into: Path) -> None:
    with tarfile.open(into, "w") as archive:
        archive.add(source, arcname=arcname)


def database_import(*, container: str, dump: Path, base_url: str | None) -> None:
    """Replace the database in `container` (a store's, or a verification's throwaway one) by the dump."""
    archive = dump.with_suffix(".tar")
    _tar_single_file(dump, "shophosting-restore.sql", archive)
    docker_client.container_archive_put(
        name=container,
        path="/tmp",  # noqa: S108 - inside the database container
        tar_path=str(archive),
        base_url=base_url,
    )
    code, output = docker_client.container_exec(name=container, command=IMPORT_COMMAND, base_url=base_url)
    if code != 0:
        raise docker_client.ProvisioningError(f"the dump does not import: {output[-2000:]}")


def volume_restore(
    *, snapshot_id: str, suffix: str, mount: str, volume: str, staging: Path, labels: dict, base_url: str | None
) -> None:
    """Make `volume` hold exactly the snapshot's files/<suffix>.tar (the engine's archive of `mount`)."""
    archive = staging / f"{suffix}.tar"
    restic.dump(snapshot_id, f"/files/{suffix}.tar", into=archive)
    docker_client.volume_contents_replace(
        volume=volume,
        top_directory=Path(mount).name,
        tar_path=str(archive),
        image=settings.DOCKER_BASE_IMAGE,
        labels=labels,
        base_url=base_url,
    )


def restore_execute(*, restore_id: int) -> RestoreRun | None:
    """Pre-restore backup, stop the app, restore the database and/or files, start, and check over HTTP.

    A suspended store's database is started for the pre-restore dump and the import, and the store ends
    stopped again. Whether to start it at the end is decided on the store as it is then, read afresh."""
    with liveness.operation_hold(key=f"restore.{restore_id}") as held:
        return _restore_execute_held(restore_id) if held else None


def _restore_execute_held(restore_id: int) -> RestoreRun | None:
    from provisioning.steps import app_stop, containers_start, containers_stop, wait_http

    run = _claim(RestoreRun, restore_id)
    if run is None:
        return None
    store = Store.objects.select_related("host", "plan", "customer").get(pk=run.store_id)
    stack = stack_for(store)
    staging = _staging(f"restore-{run.pk}")
    step = "pre_backup"

    def log(message: str) -> None:
        _restore_log(run.pk, step, message)

    try:
        # Before the pre-restore backup, which would otherwise stop a stopped database again after its dump.
        if _ensure_db_running(store):
            log("the store is stopped: its database was started for the restore")
        pre = BackupRun.objects.create(store=store, kind=Kind.PRE_RESTORE, created_by=run.created_by)
        BackupEvent.objects.create(backup_run=pre, new_status=pre.status, note=f"before restore {run.pk}")
        RestoreRun.objects.filter(pk=run.pk).update(pre_restore_backup=pre)
        pre = backup_execute(run_id=pre.pk)
        if pre.status != RunStatus.SUCCEEDED:
            raise restic.ResticError(f"the pre-restore backup failed, nothing was changed: {pre.error}")
        log(f"snapshot {pre.snapshot_id[:8]} taken of the store as it was")

        step = "stop"
        app_stop(store, log)

        if run.scope in (RestoreRun.Scope.DATABASE, RestoreRun.Scope.ALL):
            step = "database"
            dump = staging / DB_DUMP
            restic.dump(run.snapshot_id, f"/{DB_DUMP}", into=dump)
            log(f"dump read from the snapshot ({dump.stat().st_size} bytes)")
            database_import(container=stack.container_name("db"), dump=dump, base_url=store.host.docker_url)
            log("database replaced by the snapshot's")

        if run.scope in (RestoreRun.Scope.FILES, RestoreRun.Scope.ALL):
            step = "files"
            for suffix, mount in _web_volumes(store).items():
                volume_restore(
                    snapshot_id=run.snapshot_id,
                    suffix=suffix,
                    mount=mount,
                    volume=stack.volume_name(suffix),
                    staging=staging,
                    labels={**stack.labels, "shophosting.role": "restore-helper"},
                    base_url=store.host.docker_url,
                )
                log(f"{suffix}: files replaced by the snapshot's")

        step = "start"
        ending = _restore_ending(run.pk, store.pk)
        if ending == "start":
            containers_start(store, log)
            step = "check"
            wait_http(store, log, timeout=settings.STORE_WEB_READY_TIMEOUT)
        elif ending == "stop":
            containers_stop(store, log)
            log("the store is not live, so it stays stopped")
    except Exception as exc:
        logger.exception("restore %s of store %s failed at %s", run.pk, store.pk, step)
        _restore_log(run.pk, step, f"failed: {exc}")
        try:  # never leave a live store down, nor a suspended one running
            ending = _restore_ending(run.pk, store.pk)
            if ending == "start" and step != "pre_backup":
                containers_start(store, lambda message: None)
            elif ending == "stop":
                containers_stop(store, lambda message: None)
        except Exception:
            logger.exception("could not return store %s to its state after a failed restore", store.pk)
        return _transition(
            RestoreRun,
            run.pk,
            RunStatus.FAILED,
            note=str(exc),
            error=f"{step}: {type(exc).__name__}: {exc}"[:10000],
            finished_at=timezone.now(),
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _restore_log(run.pk, "done", "restore finished")
    return _transition(RestoreRun, run.pk, RunStatus.SUCCEEDED, finished_at=timezone.now())


def _restore_ending(run_id: int, store_id: int) -> str:
    """What the end of a restore does with the store's containers, decided on fresh rows: "start" a live
    store, "stop" any other (a suspended store stays suspended), or "leave" them alone when the run is no
    longer running (reaped: another operation may own the store by now)."""
    if not RestoreRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).exists():
        return "leave"
    status = Store.objects.values_list("status", flat=True).get(pk=store_id)
    return "start" if status == Store.Status.ACTIVE else "stop"


# --- Runs whose worker or enqueue was lost -----------------------------------------------------------------


def runs_recover(*, now=None, grace_seconds: int = 60) -> dict[str, list[int]]:
    """Run every minute: a recorded run always runs or ends, so it never holds its store for ever.

    - queued runs whose RQ job is gone (the web process died between the commit and the enqueue, or Redis
      lost its data) are enqueued again under the same job id; `_claim` makes a second delivery harmless;
    - running runs whose worker is gone (nothing holds their liveness lock) or that ran past their job's
      timeout (a worker that hangs) are failed;
    - a pre-restore backup left queued by a restore that stopped is failed (it runs inside its restore)."""
    from shophosting.core.queues import rq_job_pending

    now = now or timezone.now()
    settled = now - timedelta(seconds=grace_seconds)
    stale = now - timedelta(seconds=settings.RESTIC_TIMEOUT + 600 + grace_seconds)
    done: dict[str, list[int]] = {"requeued": [], "reaped": []}
    for model, prefix in ((RestoreRun, "restore"), (BackupRun, "backup")):
        for run in model.objects.filter(status=RunStatus.RUNNING):
            if run.started_at and run.started_at < stale:
                why = "ran past its timeout; the worker probably died"
            elif run.store_id and liveness.operation_holder_alive(key=f"{prefix}.{run.pk}") is False:
                # Store runs only: system backups hold no store, and the timeout alone reaps them.
                why = "the worker running it is gone (it stopped, or lost its database connection)"
            else:
                continue
            with transaction.atomic():
                if model.objects.select_for_update().get(pk=run.pk).status != RunStatus.RUNNING:
                    continue
                _transition(model, run.pk, RunStatus.FAILED, note=why, error=why, finished_at=now)
            done["reaped"].append(run.pk)
    for model, prefix in ((BackupRun, "backup"), (RestoreRun, "restore")):
        for run in model.objects.filter(status=RunStatus.QUEUED, created_at__lt=settled):
            if model is BackupRun and run.kind == Kind.PRE_RESTORE:
                owner_running = RestoreRun.objects.filter(pre_restore_backup=run, status=RunStatus.RUNNING).exists()
                if not owner_running:
                    _transition(model, run.pk, RunStatus.FAILED, note="its restore stopped", finished_at=now)
                    done["reaped"].append(run.pk)
                continue
            if rq_job_pending(queue="backups", job_id=f"{prefix}-{run.pk}"):
                continue
            if model is RestoreRun:
                function = jobs.restore_run_job
            elif run.store_id is None:
                function = jobs.system_backup_run_job
            else:
                function = jobs.backup_run_job
            logger.warning("%s %s was queued but its RQ job is gone; enqueued again", prefix, run.pk)
            _rq_enqueue(function, run.pk, f"{prefix}-{run.pk}")
            done["requeued"].append(run.pk)
    return done


# --- Schedules and retention ------------------------------------------------------------------------------


def backups_enqueue_due(*, now=None, dry_run: bool = False) -> list[int]:
    """Queue a scheduled backup of every active store whose last backup is older than the interval."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.BACKUP_INTERVAL_HOURS)
    due = []
    for store in Store.objects.filter(status=Store.Status.ACTIVE).order_by("pk"):
        last = store.backup_runs.exclude(status=RunStatus.FAILED).exclude(kind=Kind.PRE_RESTORE).first()
        if last is not None and last.created_at > cutoff:
            continue
        if not dry_run:
            try:
                backup_enqueue(store_id=store.pk, kind=Kind.SCHEDULED)
            except BackupConflict:
                continue
        due.append(store.pk)
    return due


def retention_days(store: Store) -> int:
    return settings.BACKUP_RETENTION_DAYS_DAILY_PLANS if store.plan.daily_backups else settings.BACKUP_RETENTION_DAYS


def backups_prune(*, dry_run: bool = False) -> dict[str, list[str]]:
    """Apply retention by time: forget each store's snapshots older than its plan's retention (counted back
    from its newest snapshot, so the newest always stays), then prune. Returns tag -> forgotten ids."""
    forgotten: dict[str, list[str]] = {}
    store_ids = BackupRun.objects.exclude(store=None).values_list("store_id", flat=True).distinct()
    stores = list(Store.objects.filter(pk__in=store_ids))
    targets = [(f"store-{s.pk}", retention_days(s)) for s in stores if s.status != Store.Status.DELETED]
    targets += [
        (Kind.SYSTEM.value, settings.BACKUP_SYSTEM_RETENTION_DAYS),
        (Kind.CODE.value, settings.BACKUP_SYSTEM_RETENTION_DAYS),
    ]
    if dry_run:
        return {tag: [] for tag, _ in targets}
    if not restic.repository_exists():
        return {}
    for tag, days in targets:
        ids = restic.forget(tags=[tag], keep_within=f"{days}d", prune=True)
        if ids:
            BackupRun.objects.filter(snapshot_id__in=ids).update(forgotten_at=timezone.now())
        forgotten[tag] = ids
    # A deleted store keeps its snapshots (its final backup above all) for its retention period after
    # teardown, then all of them go.
    for store in stores:
        if store.status != Store.Status.DELETED:
            continue
        deleted = store.events.filter(new_status=Store.Status.DELETED).order_by("-created_at").first()
        if deleted is None or deleted.created_at > timezone.now() - timedelta(days=retention_days(store)):
            continue
        ids = [snapshot["id"] for snapshot in restic.snapshots(tags=[f"store-{store.pk}"])]
        if ids:
            restic.forget_ids(ids, prune=True)
            BackupRun.objects.filter(snapshot_id__in=ids).update(forgotten_at=timezone.now())
        forgotten[f"store-{store.pk}"] = ids
    return forgotten


def snapshots_reconcile(*, dry_run: bool = False) -> dict[str, list[str]]:
    """Make the BackupRun records match this installation's snapshots in the repository. Run by the
    `backups` queue (shophosting/cron.py, `backups_reconcile`), never in a web request: pages read the records.

    - "recorded": a snapshot no record names gets one (kind from its tags), if its store exists, the
      snapshot's customer tag is that store's customer and the snapshot is not older than the store;
    - "adopted": a record of a snapshot made before tags were namespaced (found by its recorded id, with no
      installation tag) keeps it: restic adds this installation's tags and the record takes the new id;
    - "forgotten": a record whose snapshot is gone (retention, a forget by hand) is marked forgotten;
      "kept": one marked forgotten whose snapshot is there after all is unmarked.
    Records finished after the listing began, and stores with a backup under way, wait for the next run.
    A repository that cannot be read raises ResticError and changes nothing."""
    listed_at = timezone.now()
    present = {snapshot["id"]: snapshot for snapshot in restic.snapshots()}
    changes: dict[str, list[str]] = {"recorded": [], "adopted": [], "forgotten": [], "kept": [], "skipped": []}
    rows = list(
        BackupRun.objects.filter(status=RunStatus.SUCCEEDED)
        .exclude(snapshot_id="")
        .values_list("pk", "snapshot_id", "forgotten_at", "finished_at", "created_at")
    )
    missing = {
        snapshot_id
        for _, snapshot_id, forgotten_at, finished_at, created_at in rows
        if forgotten_at is None and snapshot_id not in present and (finished_at or created_at) <= listed_at
    }
    legacy = {snapshot["id"]: snapshot for snapshot in restic.snapshots_by_id(sorted(missing))} if missing else {}
    for snapshot_id in sorted(missing):
        tags = legacy.get(snapshot_id, {}).get("tags") or []
        if snapshot_id in legacy and not any(tag.startswith("installation:") for tag in tags):
            try:
                if not dry_run:
                    _snapshot_adopt(snapshot_id, tags=[tag for tag in tags if tag and "," not in tag])
            except restic.ResticError as exc:  # e.g. a backup holds the repository lock: the next run adopts it
                logger.warning("snapshot %s not adopted yet: %s", snapshot_id[:8], exc)
                changes["skipped"].append(snapshot_id)
            else:
                changes["adopted"].append(snapshot_id)
        else:
            changes["forgotten"].append(snapshot_id)
    changes["kept"] = sorted(
        {snapshot_id for _, snapshot_id, forgotten, *_ in rows if forgotten and snapshot_id in present}
    )
    recorded = set(BackupRun.objects.exclude(snapshot_id="").values_list("snapshot_id", flat=True))
    for snapshot_id, snapshot in present.items():
        if snapshot_id in recorded:
            continue
        refused = _snapshot_record(snapshot, dry_run=dry_run)
        changes["skipped" if refused else "recorded"].append(snapshot_id)
        if refused:
            logger.info("snapshot %s not recorded: %s", snapshot_id[:8], refused)
    if not dry_run:
        now = timezone.now()
        BackupRun.objects.filter(snapshot_id__in=changes["forgotten"], forgotten_at=None).update(forgotten_at=now)
        BackupRun.objects.filter(snapshot_id__in=changes["kept"]).update(forgotten_at=None)
    return changes


def _snapshot_adopt(snapshot_id: str, *, tags: list[str]) -> None:
    new_id = restic.tags_adopt(snapshot_id, tags=tags)
    with transaction.atomic():
        for run in BackupRun.objects.select_for_update().filter(snapshot_id=snapshot_id):
            run.snapshot_id = new_id
            run.save(update_fields=["snapshot_id"])
            BackupEvent.objects.create(
                backup_run=run,
                old_status=run.status,
                new_status=run.status,
                note=f"snapshot {snapshot_id[:8]} tagged for this installation; restic's new id {new_id[:8]}",
            )


STORE_TAG = re.compile(r"store-([0-9]+)")


def _snapshot_record(snapshot: dict, *, dry_run: bool) -> str:
    """Record a snapshot found in the repository as a succeeded BackupRun; returns why not, or ""."""
    tags = snapshot.get("tags") or []
    kind = next((kind for kind in Kind.values if kind in tags and kind != Kind.FOUND), Kind.FOUND)
    store_ids = {int(match[1]) for tag in tags if (match := STORE_TAG.fullmatch(tag))}
    taken_at = datetime.fromisoformat(snapshot["time"])
    with transaction.atomic():
        store = None
        if len(store_ids) > 1:
            return "tagged with several stores"
        if store_ids:
            # Under the store's row lock, as backup_enqueue takes it: a backup queued or running now may be
            # about to record this very snapshot.
            store = Store.objects.select_for_update().filter(pk=store_ids.pop()).first()
            if store is None:
                return "its store is not in this database"
            if [tag for tag in tags if tag.startswith("customer-")] != [f"customer-{store.customer_id}"]:
                return f"its customer tag is not store {store.pk}'s customer"
            if taken_at < store.created_at:
                return f"older than store {store.pk}"
            if store.backup_runs.filter(status__in=ACTIVE_STATUSES).exists():
                return f"a backup of store {store.pk} is under way"
        elif kind in (Kind.SYSTEM, Kind.CODE):
            if BackupRun.objects.filter(store=None, kind=kind, status__in=ACTIVE_STATUSES).exists():
                return f"a {kind} backup is under way"
        else:
            return "neither a store's nor a platform snapshot"
        if BackupRun.objects.filter(snapshot_id=snapshot["id"]).exists():
            return "recorded meanwhile"
        if dry_run:
            return ""
        run = BackupRun.objects.create(
            store=store,
            kind=kind,
            status=RunStatus.SUCCEEDED,
            snapshot_id=snapshot["id"],
            size_bytes=(snapshot.get("summary") or {}).get("total_bytes_processed"),
            finished_at=taken_at,
        )
        BackupEvent.objects.create(
            backup_run=run, new_status=run.status, note="found in the repository with no record: recorded"
        )
    return ""


# --- Verified restorable ----------------------------------------------------------------------------------


def backups_verify(*, store_id: int | None = None, now=None, dry_run: bool = False) -> list[BackupRun]:
    """Restore-check the newest snapshot of each active store (or of one store) not verified in the last 7 days;
    failures are e-mailed to staff."""
    from django.core.mail import mail_admins

    from backups.verification import snapshot_verify

    now = now or timezone.now()
    stores = Store.objects.filter(status__in=[Store.Status.ACTIVE, Store.Status.SUSPENDED])
    if store_id is not None:
        stores = Store.objects.filter(pk=store_id)
    checked = []
    for store in stores.order_by("pk"):
        latest = store.backup_runs.filter(status=RunStatus.SUCCEEDED, forgotten_at=None).exclude(snapshot_id="").first()
        if latest is None or (store_id is None and latest.verified_at and latest.verified_at > now - timedelta(days=7)):
            continue
        if dry_run:
            checked.append(latest)
            continue
        try:
            result = snapshot_verify(run_id=latest.pk)
        except StoreBusy as exc:  # a job, backup or restore of the store runs now: checked next time
            logger.info("verification of store %s skipped: %s", store.pk, exc)
            continue
        except Exception as exc:  # one store's failure is recorded and mailed; the others are still checked
            logger.exception("verification of store %s failed", store.pk)
            BackupRun.objects.filter(pk=latest.pk).update(
                verify_error=f"{type(exc).__name__}: {exc}"[:5000], verified_at=None
            )
            result = BackupRun.objects.get(pk=latest.pk)
        if result.verify_error:
            mail_admins(
                f"Backup verification failed for {store.domain}",
                f"Snapshot {result.snapshot_id[:8]} of store {store.pk} did not restore: {result.verify_error}",
            )
        checked.append(result)
    return checked


# --- System and application-code backups ------------------------------------------------------------------

# What the application-code backup leaves out: installed packages, runtime data, caches.
CODE_EXCLUDES = (".venv", "var", "__pycache__", "*.pyc", "node_modules", ".ruff_cache", ".pytest_cache")


def system_backup_enqueue(*, kind: str = Kind.SYSTEM, actor: User | None = None) -> BackupRun:
    if kind not in (Kind.SYSTEM, Kind.CODE):
        raise ValueError(f"not a platform backup kind: {kind}")
    with transaction.atomic():
        # One platform backup of each kind at a time; the lock is the check plus the create in one transaction.
        running = BackupRun.objects.select_for_update().filter(store=None, kind=kind, status__in=ACTIVE_STATUSES)
        if running.exists():
            raise BackupConflict(f"A {kind} backup is already running.")
        run = BackupRun.objects.create(kind=kind, created_by=actor)
        BackupEvent.objects.create(backup_run=run, new_status=run.status, note=f"{kind} backup requested")
        transaction.on_commit(lambda: _rq_enqueue(jobs.system_backup_run_job, run.pk, f"backup-{run.pk}"))
    return run


def _platform_database_dump(into: Path) -> None:
    """The platform's own database: mariadb-dump for MySQL/MariaDB, SQLite's online backup for the demo."""
    import sqlite3
    import subprocess

    from django.db import connection

    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        source = sqlite3.connect(database["NAME"])
        target = sqlite3.connect(into)
        with target:
            source.backup(target)
        source.close()
        target.close()
        return
    command = ["mariadb-dump", "--single-transaction", "--quick", "--routines", "--triggers", "--events"]
    command += ["-h", database.get("HOST") or "127.0.0.1", "-P", str(database.get("PORT") or 3306)]
    command += ["-u", database.get("USER") or "root", database["NAME"]]
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MYSQL_PWD": database.get("PASSWORD") or ""}
    with open(into, "wb") as handle:
        completed = subprocess.run(  # noqa: S603 - an argument list; the password goes through the environment
            command,
            stdout=handle,
            stderr=subprocess.PIPE,
            env=environment,
            timeout=settings.RESTIC_TIMEOUT,
            check=False,
        )
    if completed.returncode != 0:
        raise restic.ResticError("mariadb-dump of the platform database failed", stderr=completed.stderr.decode())


def system_backup_paths() -> list[str]:
    """Directories and files the system backup holds besides the database dump, where they exist."""
    candidates = [settings.NGINX_SITES_DIR, settings.TLS_CERT_DIR, str(Path(settings.ACME_ACCOUNT_KEY_PATH).parent)]
    candidates += [str(settings.BASE_DIR / ".env"), settings.PLATFORM_ENV_FILE, *settings.SYSTEM_BACKUP_EXTRA_PATHS]
    return sorted({str(Path(p).resolve()) for p in candidates if p and Path(p).exists()})


def system_backup_execute(*, run_id: int) -> BackupRun | None:
    run = _claim(BackupRun, run_id)
    if run is None:
        return None
    staging = _staging(f"{run.kind}-{run.pk}")
    started = time.monotonic()
    try:
        restic.repository_init()
        if run.kind == Kind.SYSTEM:
            _platform_database_dump(staging / "platform-db.sql")
            database_bytes = (staging / "platform-db.sql").stat().st_size
            summary = restic.backup(["platform-db.sql", *system_backup_paths()], cwd=staging, tags=[Kind.SYSTEM])
        else:
            database_bytes = None
            summary = restic.backup([str(settings.BASE_DIR)], cwd=staging, tags=[Kind.CODE], excludes=CODE_EXCLUDES)
    except Exception as exc:
        logger.exception("%s backup %s failed", run.kind, run.pk)
        return _backup_failed(run, exc, started=started)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _backup_succeeded(run, summary, started=started, database_bytes=database_bytes)


def final_backup_restore_into_new_store(*, old_store_id: int, domain: str, actor: User | None = None) -> RestoreRun:
    """Bring a deleted store back from its final backup: a new store for the same customer and plan is built,
    then the final snapshot (database and files) is restored into it. Runs in the caller's process."""
    from provisioning.orders import store_order_paid
    from provisioning.services import job_execute
    from stores.services import store_create

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
    return restore_execute(restore_id=run.pk) or RestoreRun.objects.get(pk=run.pk)
