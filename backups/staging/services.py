"""Requests for staging operations, and the one writer of StagingRun.status.

Each request locks the live store and then its staging copy (always in that order) and refuses while either
has an operation active: a push reads the copy while it writes the live store, and a refresh the other way
round, so neither may start while the other store is busy. The job runs on the store it changes."""

import re

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from backups.models import BackupRun, RunStatus
from backups.staging.models import StagingEvent, StagingRun
from provisioning.exceptions import JobConflict
from provisioning.services import job_enqueue
from shophosting.core.transitions import transition
from stores.exceptions import StoreBusy
from stores.models import Store
from stores.operations import store_lock_for_operation
from stores.staging import staging_copy_of, staging_store_create

R = StagingRun.Status
RUN_ALLOWED_FROM: dict[str, set[str]] = {
    R.RUNNING: {R.QUEUED},
    R.SUCCEEDED: {R.RUNNING},
    R.FAILED: {R.QUEUED, R.RUNNING},
}
TABLE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MAX_TABLES = 200


def run_transition(run_id: int, to: str, *, note: str = "", **fields) -> StagingRun:
    """The one writer of StagingRun.status: the shared transition, along RUN_ALLOWED_FROM."""
    return transition(
        StagingRun,
        run_id,
        to,
        allowed_from=RUN_ALLOWED_FROM,
        event_model=StagingEvent,
        event_link="run",
        note=note[:5000],
        **fields,
    )


def _locked_pair(live_store_id: int) -> tuple[Store, Store]:
    """The live store and its staging copy, both locked and neither busy (JobConflict says which is)."""
    try:
        live = store_lock_for_operation(store_id=live_store_id)
        staging = staging_copy_of(live)
        if staging is None:
            raise ValidationError(f"{live.domain} has no staging copy; create one first.")
        staging = store_lock_for_operation(store_id=staging.pk)
    except StoreBusy as exc:
        raise JobConflict(str(exc)) from None
    if staging.status != Store.Status.ACTIVE:
        raise ValidationError(
            f"The staging copy {staging.domain} is {staging.get_status_display().lower()}; it must be live first."
        )
    return live, staging


LIVE_SOURCE = "live"  # the form's value for "a live copy (now)"; a backup is chosen by its BackupRun id


def source_backup_choose(*, live: Store, source: str | int | None) -> BackupRun | None:
    """The backup of `live` a copy is made from (None: a live copy, for `source` None, "" or "live"), from the
    database records the backups page lists (no restic in a request). Refused in plain words, nothing
    changed: not a backup of this store, one that did not complete, one the repository no longer keeps, or
    one whose last restore check (backups' verify) failed."""
    if source in (None, "", LIVE_SOURCE):
        return None
    try:
        backup_id = int(source)
    except (TypeError, ValueError):
        raise ValidationError("Choose a live copy or one of your store's backups from the list.") from None
    run = BackupRun.objects.filter(pk=backup_id, store=live).first()
    if run is None:
        raise ValidationError(f"That backup is not one of {live.domain}'s; choose one from the list.")
    if run.status != RunStatus.SUCCEEDED or not run.snapshot_id:
        raise ValidationError("That backup did not complete, so a copy cannot be made from it; choose another.")
    if run.forgotten_at is not None:
        raise ValidationError("That backup is no longer kept (it has expired); choose a newer one.")
    if run.verify_error:
        raise ValidationError(
            "That backup failed its last restore check, so a copy is not made from it; choose another."
        )
    return run


def _from(backup: BackupRun | None) -> str:
    return f"backup #{backup.pk} (snapshot {backup.snapshot_id[:8]})" if backup else "a live copy"


def _record(*, live: Store, staging: Store, job, kind: str, actor: User | None, **fields) -> StagingRun:
    run = StagingRun.objects.create(live=live, staging=staging, job=job, kind=kind, created_by=actor, **fields)
    note = f"{kind} requested" + (
        f" from {_from(run.source_backup)}" if kind in (StagingRun.Kind.CREATE, StagingRun.Kind.REFRESH) else ""
    )
    StagingEvent.objects.create(run=run, new_status=run.status, actor=actor, note=note)
    return run


@transaction.atomic
def staging_create(*, live_store_id: int, source: str | int | None = None, actor: User | None = None) -> StagingRun:
    """A staging copy of a live store: its Store row (stores.staging, which refuses plans without the
    `staging` feature with a ValidationError in plain words) and the job that builds it, from a live copy or
    from the backup `source` (source_backup_choose)."""
    try:
        live = store_lock_for_operation(store_id=live_store_id)  # the live store is read by the copy: not while busy
    except StoreBusy as exc:
        raise JobConflict(str(exc)) from None
    backup = source_backup_choose(live=live, source=source)
    staging = staging_store_create(live_store_id=live_store_id, actor=actor)
    job = job_enqueue(store_id=staging.pk, kind="staging_create", actor=actor)
    return _record(
        live=staging.staging_of,
        staging=staging,
        job=job,
        kind=StagingRun.Kind.CREATE,
        actor=actor,
        source_backup=backup,
    )


@transaction.atomic
def staging_create_retry(
    *, staging_store_id: int, source: str | int | None = None, actor: User | None = None
) -> StagingRun:
    """A failed copy's setup again (staff's Retry on its failed job): the same steps, which find their done
    work done, as a new job with its own run."""
    staging = Store.objects.get(pk=staging_store_id, staging_of__isnull=False)
    try:
        live = store_lock_for_operation(store_id=staging.staging_of_id)
    except StoreBusy as exc:
        raise JobConflict(str(exc)) from None
    backup = source_backup_choose(live=live, source=source)
    job = job_enqueue(store_id=staging.pk, kind="staging_create", actor=actor)
    return _record(live=live, staging=staging, job=job, kind=StagingRun.Kind.CREATE, actor=actor, source_backup=backup)


@transaction.atomic
def staging_refresh(*, live_store_id: int, source: str | int | None = None, actor: User | None = None) -> StagingRun:
    """The staging copy's database and files become the live store's again (whatever staging changed goes),
    as it is now or as one of its backups (`source`, source_backup_choose) holds it."""
    live, staging = _locked_pair(live_store_id)
    backup = source_backup_choose(live=live, source=source)
    job = job_enqueue(store_id=staging.pk, kind="staging_refresh", actor=actor)
    return _record(live=live, staging=staging, job=job, kind=StagingRun.Kind.REFRESH, actor=actor, source_backup=backup)


def tables_parse(value: str | list[str] | None) -> list[str]:
    """The tables a database push is limited to, from a list or a comma/space separated text; ValidationError
    for anything that is not a plain table name (the step checks that the staging database has them)."""
    if value is None:
        return []
    names = value if isinstance(value, list) else re.split(r"[\s,]+", value)
    names = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    malformed = [name for name in names if not TABLE_NAME.fullmatch(name)]
    if malformed:
        raise ValidationError(
            f"These are not table names: {', '.join(malformed[:10])} (letters, digits and underscores only)."
        )
    if len(names) > MAX_TABLES:
        raise ValidationError(f"A push can be limited to at most {MAX_TABLES} tables.")
    return names


@transaction.atomic
def staging_push(
    *, live_store_id: int, scope: str, tables: str | list[str] | None = None, actor: User | None = None
) -> StagingRun:
    """Push the staging copy to its live store: `scope` files, database or both; a database push may be
    limited to `tables`. The job backs the live store up first; that backup undoes the push (staging_undo)."""
    if scope not in StagingRun.Scope.values:
        raise ValidationError(f"Push files, the database or both, not “{scope}”.")
    tables = tables_parse(tables)
    if tables and scope == StagingRun.Scope.FILES:
        raise ValidationError("Tables can be chosen for a database push only; this push sends files only.")
    live, staging = _locked_pair(live_store_id)
    skip = {}
    if scope == StagingRun.Scope.FILES:
        skip["push_database"] = "a files-only push"
    if scope == StagingRun.Scope.DATABASE:
        skip["push_files"] = "a database-only push"
    job = job_enqueue(store_id=live.pk, kind="staging_push", actor=actor, skip=skip)
    return _record(
        live=live, staging=staging, job=job, kind=StagingRun.Kind.PUSH, actor=actor, scope=scope, tables=tables
    )


@transaction.atomic
def staging_undo(*, push_run_id: int, actor: User | None = None) -> StagingRun:
    """Put the live store back from the backup its push took first (everything written to it since goes)."""
    push = StagingRun.objects.select_related("live", "staging").get(pk=push_run_id, kind=StagingRun.Kind.PUSH)
    if not push.backup_reference:
        raise ValidationError("This push took no backup (it stopped before it changed anything): nothing to undo.")
    try:
        store_lock_for_operation(store_id=push.live_id)
    except StoreBusy as exc:
        raise JobConflict(str(exc)) from None
    job = job_enqueue(store_id=push.live_id, kind="staging_undo", actor=actor)
    return _record(live=push.live, staging=push.staging, job=job, kind=StagingRun.Kind.UNDO, actor=actor, undoes=push)
