"""What a database restore would throw away, found and exported before it: the `restore_export` job kind, the
request for one, and the export itself (also run by the restore's own job once the store is offline).
Exports past the store's backup retention are removed by services.retention.

Which rows count is backups.app_tables' business. Here they are read from the store's live database the way
backups read it: `mariadb` and `mariadb-dump` run inside the store's database container, with the root
password from the container's own secret file (no new network path, no password on a command line).
"""

import csv
import logging
import os
import re
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from backups import app_tables, restic, selectors
from backups.models import ACTIVE_STATUSES, BackupEvent, RestoreExport, RestoreRun, RunStatus
from backups.services.records import (
    BackupConflict,
    RepositoryUnavailable,
    SnapshotNotFound,
    run_transition,
    snapshot_for_store,
)
from backups.services.stack_io import (
    database_running,
    database_start,
    database_stop,
    staging_directory,
    staging_path,
)
from provisioning import docker_client
from provisioning.exceptions import JobConflict
from provisioning.kinds import Log
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue
from provisioning.stacks import stack_for
from provisioning.stacks.base import DB_ROOT_CLIENT_ENV
from stores.exceptions import InvalidTransition
from stores.models import Store

logger = logging.getLogger(__name__)
KIND = "restore_export"  # the job kind (backups.kinds)
SQL_FILE = "changes.sql"
DATABASE_STARTED_HERE = ".database-started-here"
# Runs `$0` (one or more statements) in the store's database, as root, reading the password from the
# container's own secret file. `$1` picks the client's output: -N -B (tab separated) or --xml.
CLIENT = f'export {DB_ROOT_CLIENT_ENV}; exec mariadb -uroot "$1" "$MARIADB_DATABASE" -e "$0"'
# mariadb-dump of the rows of table `$1` matching `$0`: INSERTs only, one row each with its column names, so
# single rows can be picked out and put back into a restored database. --tz-utc (the default) reads and
# writes TIMESTAMP columns in UTC, which the WHERE clause compares in too.
DUMP_ROWS = (
    f"export {DB_ROOT_CLIENT_ENV}; exec mariadb-dump --single-transaction --no-create-info --skip-triggers --compact "
    '--complete-insert --skip-extended-insert --where="$0" -uroot "$MARIADB_DATABASE" "$1"'
)
# Bytes XML 1.0 cannot carry; a tenant's text may hold them. They become "?" in the CSV files only: the SQL
# file keeps every byte.
XML_INVALID = bytes(range(0x20)).translate(None, b"\t\n\r")
XML_SAFE = bytes.maketrans(XML_INVALID, b"?" * len(XML_INVALID))
NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


class ExportNotReady(Exception):
    """A restore was asked for with an export that is not this store's and snapshot's, not finished, or used."""


class ExportFailed(Exception):
    pass


def _export_of(job_id: int) -> RestoreExport:
    return RestoreExport.objects.select_related("backup_run").get(job_id=job_id)


def _staging_name(export: RestoreExport) -> str:
    return f"restore-export-{export.pk}"


def export_path(export: RestoreExport) -> Path:
    return Path(settings.BACKUP_EXPORT_DIR) / export.file_name


# --- Reading the store's database -------------------------------------------------------------------------


def _query(container: str, statement: str, base_url: docker_client.EngineRef) -> list[list[str]]:
    """Rows of a statement, tab separated (mariadb -N -B): only for numbers and names this code matches."""
    code, output = docker_client.container_exec(
        name=container, command=["sh", "-c", CLIENT, statement, "-NB"], base_url=base_url
    )
    if code != 0:
        raise ExportFailed(f"the store's database did not answer: {output[-1000:]}")
    return [line.split("\t") for line in output.splitlines() if line]


def database_columns(container: str, base_url: docker_client.EngineRef) -> dict[str, set[str]]:
    """table -> its columns, for every table of the store's database."""
    rows = _query(
        container,
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()",
        base_url,
    )
    columns: dict[str, set[str]] = {}
    for row in rows:
        if len(row) == 2:  # a name with a tab in it is escaped by the client and matches no known table
            columns.setdefault(row[0], set()).add(row[1])
    return columns


def _counts(
    container: str, planned: list[app_tables.Planned], base_url: docker_client.EngineRef
) -> list[tuple[int, int]]:
    """(rows since the cutoff, of them the rows the summary counts) per planned selection, in one statement."""
    if not planned:
        return []
    union = app_tables.count_statement(planned)
    found = {
        int(row[0]): (int(row[1]), int(row[2])) for row in _query(container, app_tables.SESSION_UTC + union, base_url)
    }
    return [found[index] for index in range(len(planned))]


def _rows_as_csv(container: str, planned: app_tables.Planned, columns: list[str], into: Path, base_url) -> None:
    """The selection's rows as CSV (a header of column names; NULL as an empty field), read from the client's
    XML output, which tells NULL from text and needs no unescaping of tabs or newlines."""
    raw = into.with_suffix(".xml")
    select = (
        f"{app_tables.SESSION_UTC} SELECT * FROM {app_tables.quote(planned.table)} WHERE {planned.where}"  # noqa: S608
        f" ORDER BY {app_tables.quote(planned.selection.key)}"
    )
    docker_client.container_exec_to_file(
        name=container, command=["sh", "-c", CLIENT, select, "--xml"], path=str(raw), base_url=base_url
    )
    xml_rows_to_csv(raw, columns, into)
    raw.unlink()


# A cell a spreadsheet would run as a formula (=, +, -, @ first) that is not a plain number.
FORMULA = re.compile(r"\A[=+\-@\t\r]")
NUMBER = re.compile(r"\A[+-]?\d+(\.\d+)?\Z")


def spreadsheet_safe(value: str) -> str:
    """The shop's customers wrote much of this text, and merchants open CSV files in spreadsheets: a value
    that would run as a formula is kept as text by a leading apostrophe (the SQL file keeps it as it is)."""
    return f"'{value}" if FORMULA.match(value) and not NUMBER.match(value) else value


def xml_rows_to_csv(source: Path, columns: list[str], into: Path) -> None:
    """mariadb --xml output as CSV: a header of column names, NULL as an empty field. Bytes XML cannot carry
    become "?" first (only in the CSV)."""
    safe = into.with_suffix(".safe.xml")
    with open(source, "rb") as raw, open(safe, "wb") as target:
        while chunk := raw.read(1 << 20):
            target.write(chunk.translate(XML_SAFE))
    with open(into, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        header = list(columns)
        writer.writerow(header)
        # The client's own output (it escapes every value), never a document a tenant wrote: no DTD, no entities.
        for _, element in ElementTree.iterparse(safe, events=("end",)):  # noqa: S314
            if element.tag != "row":
                continue
            values = {field.get("name"): ("" if field.get(NIL) == "true" else (field.text or "")) for field in element}
            writer.writerow([spreadsheet_safe(values.get(column, "")) for column in header])
            element.clear()
    safe.unlink()


def _ordered_columns(container: str, table: str, base_url: docker_client.EngineRef) -> list[str]:
    rows = _query(
        container,
        f"SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"  # noqa: S608 - app_tables' name and checked prefix
        " ORDER BY ORDINAL_POSITION",
        base_url,
    )
    return [row[0] for row in rows]


def _rows_as_sql(container: str, planned: list[app_tables.Planned], into: Path, base_url, *, since: str) -> None:
    """One SQL file: a header, then each selection's rows as INSERT statements (mariadb-dump --where)."""
    part = into.with_suffix(".part")
    with open(into, "w", encoding="utf-8") as handle:
        handle.write(
            f"-- Rows created or changed since {since} UTC, exported by ShopHosting before a database restore.\n"
            "-- Plain INSERTs, one row each: a row that the restored database already holds (an older version of\n"
            "-- it) is refused by its primary key; pick the rows you want to bring back.\n"
            "SET NAMES utf8mb4;\nSET time_zone = '+00:00';\n"
        )
    for selection in planned:
        docker_client.container_exec_to_file(
            name=container,
            command=["sh", "-c", DUMP_ROWS, selection.where, selection.table],
            path=str(part),
            base_url=base_url,
        )
        with open(into, "ab") as handle, open(part, "rb") as rows:
            handle.write(f"\n-- {selection.selection.name}: rows of `{selection.table}`\n".encode())
            shutil.copyfileobj(rows, handle)
    part.unlink(missing_ok=True)


# --- The export -------------------------------------------------------------------------------------------


def changes_export(store: Store, export: RestoreExport, log: Log) -> RestoreExport:
    """Find the rows of the store's application tables changed at or after `export.changed_after`, count
    them for the summary and write the export (a CSV per selection and one SQL file, zipped under
    BACKUP_EXPORT_DIR). The store's database must run. Returns the export as recorded."""
    container = stack_for(store).container_name("db")
    base_url = store.host.engine
    columns = database_columns(container, base_url)
    try:
        application = app_tables.application_for(store.plan.platform)
        selections = application.selections
        prefix = app_tables.table_prefix(application, columns)
    except app_tables.NoApplicationTables as exc:
        # A database the application's tables are gone from is just what a restore mends: say so, keep
        # nothing (there is nothing to compare), and never stand in the restore's way.
        summary = f"Nothing to compare with this backup: {exc}"
        if export.file_name:  # an earlier export of the same record (its summary read before the restore)
            export_path(export).unlink(missing_ok=True)
        RestoreExport.objects.filter(pk=export.pk).update(
            counts={}, rows={}, summary=summary, file_name="", size_bytes=None
        )
        log(summary)
        return RestoreExport.objects.get(pk=export.pk)
    planned = app_tables.plan(selections, columns=columns, prefix=prefix, cutoff=export.changed_after)
    counted: dict[str, int] = {}
    rows: dict[str, int] = {}
    for selection, (total, counts) in zip(planned, _counts(container, planned, base_url), strict=True):
        rows[selection.selection.name] = total
        if selection.selection.noun:
            noun = selection.selection.noun[0]
            counted[noun] = counted.get(noun, 0) + counts
    summary = app_tables.summary_sentence(counted, selections=selections)
    log(f"{summary} (tables with prefix {prefix!r}, {sum(rows.values())} rows in all)")

    staging = staging_path(_staging_name(export))
    staging.mkdir(parents=True, exist_ok=True)
    files = staging / "files"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir()
    since = f"{export.changed_after.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    for selection in planned:
        table_columns = _ordered_columns(container, selection.table, base_url)
        _rows_as_csv(container, selection, table_columns, files / f"{selection.selection.name}.csv", base_url)
    _rows_as_sql(container, planned, files / SQL_FILE, base_url, since=since)

    file_name = f"store-{store.pk}/changes-{export.pk}-{export.snapshot_id[:8]}.zip"
    target = Path(settings.BACKUP_EXPORT_DIR) / file_name
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files.iterdir()):
            archive.write(path, arcname=path.name)
    os.replace(partial, target)  # a download never sees half a file; a second export replaces the first
    shutil.rmtree(files, ignore_errors=True)
    size = target.stat().st_size
    RestoreExport.objects.filter(pk=export.pk).update(
        counts=counted, rows=rows, summary=summary, file_name=file_name, size_bytes=size
    )
    log(f"exported: {len(planned)} CSV files and {SQL_FILE} ({size} bytes)")
    return RestoreExport.objects.get(pk=export.pk)


RESTIC_TIME = re.compile(r"^(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def snapshot_time(value: str) -> datetime:
    """restic's snapshot time ("2026-12-05T23:45:01.123456789Z" or with an offset) as an aware datetime."""
    match = RESTIC_TIME.match(value or "")
    if not match:
        raise ExportFailed(f"restic gave no snapshot time: {value!r}")
    fraction = (match.group(2) or ".0")[:7]
    offset = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(f"{match.group(1)}{fraction}{offset}")


def changed_after(*, store: Store, export: RestoreExport) -> datetime:
    """The moment rows must be newer than to be missing from the snapshot: the snapshot's time in restic,
    or, earlier still, when its backup began (the dump is read before restic records the snapshot, so a row
    written while the dump ran is counted: one row too many rather than one lost)."""
    try:
        snapshot = snapshot_for_store(store=store, snapshot_id=export.snapshot_id)
    except restic.ResticError as exc:
        raise RepositoryUnavailable(f"the backup storage did not answer: {exc}") from exc
    moments = [snapshot_time(snapshot.get("time", ""))]
    if export.backup_run is not None and export.backup_run.started_at is not None:
        moments.append(export.backup_run.started_at)
    return min(moments)


# --- The steps --------------------------------------------------------------------------------------------


def step_find(store: Store, log: Log, *, job_id: int) -> None:
    """The snapshot's time (asking restic that it is still this store's), and the database running."""
    export = _export_of(job_id)
    staging = staging_directory(_staging_name(export))
    cutoff = changed_after(store=store, export=export)
    RestoreExport.objects.filter(pk=export.pk).update(changed_after=cutoff)
    log(f"snapshot {export.snapshot_id[:8]}: rows changed since {cutoff:%Y-%m-%d %H:%M:%S} UTC")
    if not database_running(store):
        database_start(store)  # a suspended store: stopped again once the export has ended
        (staging / DATABASE_STARTED_HERE).touch()
        log("the store is stopped: its database was started to read it")


def step_export(store: Store, log: Log, *, job_id: int) -> None:
    changes_export(store, _export_of(job_id), log)


def export_for_restore(store: Store, log: Log, *, restore: RestoreRun) -> RestoreExport:
    """In a restore's job, with the store offline and its database running: the export the merchant read
    before confirming, made again now so that nothing written since is missed (or a new one, for a restore
    staff asked for without one)."""
    export = restore.exports.select_related("backup_run").first()
    if export is None:
        with transaction.atomic():
            export = RestoreExport.objects.create(
                store=store,
                backup_run=selectors.store_snapshot(store, restore.snapshot_id),
                snapshot_id=restore.snapshot_id,
                restore_run=restore,
                created_by=restore.created_by,
                job_id=restore.job_id,
            )
            BackupEvent.objects.create(restore_export=export, new_status=export.status, note=f"restore {restore.pk}")
        run_transition(RestoreExport, export.pk, RunStatus.RUNNING, started_at=timezone.now())
    try:
        cutoff = changed_after(store=store, export=export)
        RestoreExport.objects.filter(pk=export.pk).update(changed_after=cutoff)
        export = changes_export(store, RestoreExport.objects.get(pk=export.pk), log)
    except Exception as exc:
        if export.status in ACTIVE_STATUSES:
            run_transition(
                RestoreExport, export.pk, RunStatus.FAILED, error=str(exc)[:5000], finished_at=timezone.now()
            )
        raise
    finally:
        shutil.rmtree(staging_path(_staging_name(export)), ignore_errors=True)
    if export.status in ACTIVE_STATUSES:
        return run_transition(RestoreExport, export.pk, RunStatus.SUCCEEDED, finished_at=timezone.now())
    BackupEvent.objects.create(
        restore_export=export,
        old_status=export.status,
        new_status=export.status,
        note=f"exported again by restore {restore.pk} with the store offline: {export.summary}",
    )
    return export


# --- The kind's hooks -------------------------------------------------------------------------------------


def on_start(job_id: int) -> None:
    run_transition(RestoreExport, _export_of(job_id).pk, RunStatus.RUNNING, started_at=timezone.now())


def on_success(job_id: int) -> None:
    run_transition(RestoreExport, _export_of(job_id).pk, RunStatus.SUCCEEDED, finished_at=timezone.now())


def on_failure(job_id: int, summary: str) -> None:
    export = _export_of(job_id)
    if export.status in ACTIVE_STATUSES:
        run_transition(
            RestoreExport, export.pk, RunStatus.FAILED, note=summary, error=summary[:5000], finished_at=timezone.now()
        )


def after(job_id: int, succeeded: bool) -> None:
    """Remove the staging directory, and stop a database this job started (a suspended store's)."""
    export = _export_of(job_id)
    staging = staging_path(_staging_name(export))
    started_here = (staging / DATABASE_STARTED_HERE).exists()
    shutil.rmtree(staging, ignore_errors=True)
    if started_here:
        database_stop(Store.objects.select_related("host", "plan").get(pk=export.store_id))


def retry(job_id: int, actor: User | None) -> ProvisioningJob:
    export = _export_of(job_id)
    return restore_export_request(store_id=export.store_id, snapshot_id=export.snapshot_id, actor=actor).job


# --- Requests -------------------------------------------------------------------------------------------


def restore_export_request(*, store_id: int, snapshot_id: str, actor: User | None = None) -> RestoreExport:
    """Queue the search for what changed in the store's database since one of its kept snapshots, and its
    export: SnapshotNotFound for anything else; BackupConflict while another operation runs."""
    store = Store.objects.get(pk=store_id)
    run = selectors.store_snapshot(store, snapshot_id)
    if run is None:
        raise SnapshotNotFound(f"snapshot {snapshot_id[:64]!r} is not one of store {store.pk}'s kept backups")
    with transaction.atomic():
        try:
            job = job_enqueue(store_id=store.pk, kind=KIND, actor=actor)
        except JobConflict as exc:
            raise BackupConflict(str(exc)) from None
        except InvalidTransition:
            raise BackupConflict(f"The store is {store.get_status_display().lower()}; it cannot be read now.") from None
        export = RestoreExport.objects.create(
            store=store, backup_run=run, snapshot_id=run.snapshot_id, job=job, created_by=actor
        )
        BackupEvent.objects.create(restore_export=export, new_status=export.status, note="summary requested")
    return export


def export_for_restore_request(*, store_id: int, snapshot_id: str, export_id: int) -> RestoreExport:
    """The export a merchant read before confirming a restore, locked: this store's and snapshot's,
    finished, and not used by another restore; else ExportNotReady. Called inside the restore's transaction."""
    export = (
        RestoreExport.objects.select_for_update()
        .filter(pk=export_id, store_id=store_id, snapshot_id=snapshot_id, status=RunStatus.SUCCEEDED)
        .first()
    )
    if export is None:
        raise ExportNotReady("Look at what changed since this backup first, then confirm the restore.")
    if export.restore_run_id is not None:
        raise ExportNotReady("This summary was used by an earlier restore. Look at what changed once more.")
    return export
