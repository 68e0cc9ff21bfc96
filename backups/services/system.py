"""The platform's own backups: its database, configuration and certificates (`system`), and the application
code (`code`). They belong to no store, so they are not store operations of the job engine: one of each kind
at a time, claimed here, and failed by `system_runs_recover` after their timeout."""

import logging
import os
import shutil
import sqlite3
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from backups import jobs, restic
from backups.models import ACTIVE_STATUSES, BackupEvent, BackupRun, RunStatus
from backups.services.records import BackupConflict, run_transition
from backups.services.stack_io import staging_directory
from shophosting.core.queues import enqueue_recorded, rq_job_pending

logger = logging.getLogger(__name__)
Kind = BackupRun.Kind


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
        transaction.on_commit(lambda: _rq_enqueue(run.pk))
    return run


def _rq_job_id(run_id: int) -> str:
    return f"backup-{run_id}"


def _rq_enqueue(run_id: int) -> None:
    enqueue_recorded(
        queue="backups",
        function=jobs.system_backup_run_job,
        args=(run_id,),
        job_id=_rq_job_id(run_id),
        job_timeout=_timeout_seconds(),
    )


def _timeout_seconds() -> int:
    return settings.RESTIC_TIMEOUT + 600


def _platform_database_dump(into: Path) -> None:
    """The platform's own database: mariadb-dump for MySQL/MariaDB, SQLite's online backup for the demo."""
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


def _claim(run_id: int) -> BackupRun | None:
    with transaction.atomic():
        run = BackupRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.QUEUED:
            return None
        return run_transition(BackupRun, run_id, RunStatus.RUNNING, started_at=timezone.now())


def system_backup_execute(*, run_id: int) -> BackupRun | None:
    run = _claim(run_id)
    if run is None:
        return None
    staging = staging_directory(f"{run.kind}-{run.pk}")
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
        return run_transition(
            BackupRun,
            run.pk,
            RunStatus.FAILED,
            note=str(exc),
            error=f"{type(exc).__name__}: {exc}"[:10000],
            finished_at=timezone.now(),
            duration_seconds=time.monotonic() - started,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return run_transition(
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


def system_runs_recover(*, now=None, grace_seconds: int = 60) -> dict[str, list[int]]:
    """Run every minute: a platform backup recorded as queued whose RQ job is gone (the process died between
    the commit and the enqueue, or Redis lost its data) is enqueued again (`_claim` makes a second delivery
    harmless), and one running past its timeout is failed, so the next one can start. (Store backups are
    jobs: the engine's reaper and requeue cover them.)"""
    now = now or timezone.now()
    stale = now - timedelta(seconds=_timeout_seconds() + grace_seconds)
    done: dict[str, list[int]] = {"requeued": [], "reaped": []}
    platform_runs = BackupRun.objects.filter(store=None, kind__in=[Kind.SYSTEM, Kind.CODE])
    for run in platform_runs.filter(status=RunStatus.RUNNING, started_at__lt=stale):
        why = "ran past its timeout; the worker probably died"
        with transaction.atomic():
            if BackupRun.objects.select_for_update().get(pk=run.pk).status != RunStatus.RUNNING:
                continue
            run_transition(BackupRun, run.pk, RunStatus.FAILED, note=why, error=why, finished_at=now)
        done["reaped"].append(run.pk)
    settled = now - timedelta(seconds=grace_seconds)
    for run_id in platform_runs.filter(status=RunStatus.QUEUED, created_at__lt=settled).values_list("pk", flat=True):
        if not rq_job_pending(queue="backups", job_id=_rq_job_id(run_id)):
            logger.warning("platform backup %s was queued but its RQ job is gone; enqueued again", run_id)
            _rq_enqueue(run_id)
            done["requeued"].append(run_id)
    return done
