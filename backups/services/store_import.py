"""Bringing an existing store in: the merchant uploads a database dump and a files archive (in chunks, resumable),
then an `import` job checks both, backs the store up, replaces its database and files, and starts it; if any
step after the backup fails, the job's undo step puts the store back from that backup.

Uploads are plain chunked PUTs at an offset (upload_append): the server's copy is the only state, so a client
whose connection broke asks for the offset and goes on from there. Why not one multipart POST: nginx and
Django would each buffer a multi-gigabyte body (client_max_body_size is 50 MB here), and one dropped
connection would cost the whole transfer. Why not the tus protocol or django-chunked-upload: neither is a
dependency of the platform, and the offset rule below is all either would add for a single-server upload.

The archives are the download's own formats (services/download.py): `<dump>.sql.gz` (or plain `.sql`) and a
`.tar.gz` holding each web volume under its mount's directory name (`wp-content/` for WordPress). Checked
before anything changes: the format, the size against the plan's disk allowance, the application's tables in
the dump (APPLICATION_TABLES, the one list), and a dump that stays inside the store's own database."""

import gzip
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from accounts.models import User
from backups.models import (
    ACTIVE_STATUSES,
    RUN_ALLOWED_FROM,
    BackupRun,
    ImportUpload,
    RunStatus,
    StoreImport,
    TransferEvent,
)
from backups.services.records import BackupConflict
from backups.services.restore import backup_in_place, database_put_back, files_put_back
from backups.services.stack_io import DB_DUMP, database_import, staging_directory, staging_path, web_volumes
from provisioning import docker_client
from provisioning.exceptions import JobConflict
from provisioning.kinds import Log
from provisioning.models import JobStep, ProvisioningJob
from provisioning.services import job_enqueue
from provisioning.stacks import stack_for
from provisioning.steps import app_stop, containers_start, wait_http
from shophosting.core.transitions import transition
from stores.exceptions import InvalidTransition
from stores.models import Store

KIND = "import"  # the job kind (backups.transfer_kinds)
PRE_BACKUP_STEP = "pre_backup"
# Steps that change the store: once one of them ran, a failure is undone from the pre-import backup.
CHANGING_STEPS = ("stop", "database", "files", "start", "answers")
# The tables an application cannot run without: a dump lacking any of them is not that application's.
# WordPress (and so WooCommerce) with the platform's table prefix (deploy/images/wordpress/wp-config.php);
# Magento with no prefix (the platform installs it without one).
APPLICATION_TABLES = {
    "woocommerce": ("wp_options", "wp_posts"),
    "magento": ("core_config_data", "store_website"),
}
DUMP_SUFFIXES = (".sql", ".sql.gz")
FILES_SUFFIXES = (".tar.gz", ".tgz")
GZIP_MAGIC = b"\x1f\x8b"
# A dump is read line by line in the worker; statements that would leave the store's own database are refused.
CREATE_TABLE = re.compile(rb"^CREATE TABLE (?:IF NOT EXISTS )?`((?:[^`]|``)+)`", re.IGNORECASE)
OTHER_DATABASE = re.compile(rb"^(?:USE\s|CREATE\s+DATABASE|DROP\s+DATABASE|CREATE\s+SCHEMA|DROP\s+SCHEMA)", re.I)
DUMP_HEADER = re.compile(rb"^-- (?:MariaDB|MySQL) dump|^CREATE TABLE|^/\*!\d+ SET ", re.MULTILINE)
COPY_BUFFER = 1024 * 1024


class UploadRefused(Exception):
    """An upload or an import request that cannot be taken, in words for the merchant; nothing was stored."""


class UploadOffsetMismatch(UploadRefused):
    """A chunk sent for another offset than where the server's copy ends; the client resumes at `expected`."""

    def __init__(self, expected: int):
        super().__init__(f"This upload continues at byte {expected}.")
        self.expected = expected


class ImportRejected(Exception):
    """An uploaded dump or archive that is not a store this platform can run; the message is for the merchant."""


def _transition(import_id: int, to: str, *, note: str = "", **fields) -> StoreImport:
    return transition(
        StoreImport,
        import_id,
        to,
        allowed_from=RUN_ALLOWED_FROM,
        event_model=TransferEvent,
        event_link="store_import",
        note=note[:5000],
        **fields,
    )


def upload_path(upload: ImportUpload) -> Path:
    return Path(settings.BACKUP_TRANSFER_DIR) / "uploads" / f"{upload.pk}.upload"


def disk_allowance_bytes(store: Store) -> int:
    return store.plan.disk_allowance_gb * 1024**3


# --- Uploads ----------------------------------------------------------------------------------------------


def upload_start(*, store_id: int, part: str, filename: str, size: int, actor: User | None = None) -> ImportUpload:
    """Announce an upload of `size` bytes; refused (UploadRefused) for a wrong file type, or when it and the
    store's other pending uploads together exceed the plan's disk allowance."""
    store = Store.objects.select_related("plan").get(pk=store_id)
    filename = Path(filename or "").name[:255]
    suffixes = DUMP_SUFFIXES if part == ImportUpload.Part.DATABASE else FILES_SUFFIXES
    if part not in ImportUpload.Part.values:
        raise UploadRefused("Upload a database dump or a files archive.")
    if not filename.lower().endswith(suffixes):
        raise UploadRefused(f"{filename or 'This file'} is not a {' or '.join(suffixes)} file.")
    if size <= 0:
        raise UploadRefused(f"{filename} is empty.")
    allowance = disk_allowance_bytes(store)
    with transaction.atomic():
        Store.objects.select_for_update().get(pk=store_id)  # two uploads at once cannot both pass the cap
        pending = (
            ImportUpload.objects.filter(store_id=store_id, removed_at=None).aggregate(total=Sum("size_declared"))[
                "total"
            ]
            or 0
        )
        if pending + size > allowance:
            raise UploadRefused(
                f"{filename} ({filesizeformat(size)}) does not fit in your plan's disk allowance of "
                f"{filesizeformat(allowance)}"
                + (f" with the {filesizeformat(pending)} already uploaded." if pending else ".")
            )
        upload = ImportUpload.objects.create(
            store_id=store_id, part=part, filename=filename, size_declared=size, created_by=actor
        )
    path = upload_path(upload)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    return upload


def upload_append(*, upload_id: int, offset: int, stream: BinaryIO, length: int) -> ImportUpload:
    """Write one chunk at `offset`, which must be where the server's copy ends (UploadOffsetMismatch names
    that offset otherwise). A chunk cut short by a broken connection keeps what arrived."""
    if length <= 0 or length > settings.BACKUP_IMPORT_CHUNK_BYTES:
        raise UploadRefused(f"Send the file in chunks of 1 to {settings.BACKUP_IMPORT_CHUNK_BYTES} bytes.")
    upload = ImportUpload.objects.get(pk=upload_id)
    # The chunk is received first, with no transaction open (a slow client holds no row lock), then appended
    # under the lock, which keeps two requests from writing the same range.
    with tempfile.TemporaryFile(dir=upload_path(upload).parent) as chunk:
        received = 0
        while received < length:
            block = stream.read(min(COPY_BUFFER, length - received))
            if not block:
                break
            chunk.write(block)
            received += len(block)
        chunk.seek(0)
        with transaction.atomic():
            upload = ImportUpload.objects.select_for_update().get(pk=upload_id)
            if upload.removed_at is not None:
                raise UploadRefused("This upload was removed. Start it again.")
            if offset != upload.size_received:
                raise UploadOffsetMismatch(upload.size_received)
            if offset + length > upload.size_declared:
                raise UploadRefused(f"This chunk goes past the {upload.size_declared} bytes announced for the file.")
            with open(upload_path(upload), "r+b") as handle:
                handle.seek(offset)
                handle.truncate()  # bytes past the offset were never acknowledged
                shutil.copyfileobj(chunk, handle, COPY_BUFFER)
            upload.size_received = offset + received
            fields = ["size_received"]
            if upload.complete:
                upload.completed_at = timezone.now()
                fields.append("completed_at")
            upload.save(update_fields=fields)
    return upload


def uploads_remove_abandoned(*, now=None) -> list[int]:
    """Remove uploads that no import took within BACKUP_IMPORT_UPLOAD_KEEP_HOURS; returns their ids."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.BACKUP_IMPORT_UPLOAD_KEEP_HOURS)
    in_use = StoreImport.objects.filter(status__in=ACTIVE_STATUSES)
    taken = set(in_use.values_list("database_upload_id", flat=True)) | set(
        in_use.values_list("files_upload_id", flat=True)
    )
    removed = []
    for upload in ImportUpload.objects.filter(removed_at=None, created_at__lte=cutoff).exclude(pk__in=taken):
        _upload_remove(upload, now=now)
        removed.append(upload.pk)
    return removed


def _upload_remove(upload: ImportUpload, *, now=None) -> None:
    upload_path(upload).unlink(missing_ok=True)
    ImportUpload.objects.filter(pk=upload.pk).update(removed_at=now or timezone.now())


# --- Checks (pure: files in, files out; also what the tests exercise without Docker) -----------------------


def _dump_lines(source: Path) -> Iterator[bytes]:
    with open(source, "rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    opener = gzip.open if compressed else open
    try:
        with opener(source, "rb") as handle:
            yield from handle
    except (OSError, EOFError, zlib.error) as exc:
        raise ImportRejected(f"The database dump is not a readable gzip file ({exc}).") from None


def dump_check(source: Path, *, into: Path, platform: str, limit_bytes: int) -> int:
    """Write the dump, uncompressed, to `into` and return its size, if it is a MariaDB/MySQL dump of one
    database holding the application's tables; ImportRejected says what is wrong otherwise."""
    tables: set[str] = set()
    looks_like_a_dump = False
    size = 0
    with open(into, "wb") as out:
        for number, line in enumerate(_dump_lines(source), start=1):
            if number <= 50 and size < 65536 and DUMP_HEADER.search(line):
                looks_like_a_dump = True
            if OTHER_DATABASE.match(line):
                raise ImportRejected(
                    f"Line {number} of the database dump switches to or creates another database "
                    f"({line[:60].decode(errors='replace').strip()}). Export the store's database alone "
                    "(mysqldump without --databases or --all-databases)."
                )
            found = CREATE_TABLE.match(line)
            if found:
                tables.add(found.group(1).replace(b"``", b"`").decode(errors="replace"))
            size += len(line)
            if size > limit_bytes:
                raise ImportRejected(
                    f"The database dump is larger than your plan's disk allowance ({filesizeformat(limit_bytes)})."
                )
            out.write(line)
    if not looks_like_a_dump:
        raise ImportRejected("The database file is not a MariaDB or MySQL dump (made with mysqldump or mariadb-dump).")
    missing = [table for table in APPLICATION_TABLES[platform] if table not in tables]
    if missing:
        raise ImportRejected(
            f"The database dump has no {', '.join(missing)} table: it is not a store of this kind "
            f"(it needs {', '.join(APPLICATION_TABLES[platform])})."
        )
    return size


def files_check(source: Path, *, into: Path, volumes: dict[str, str], limit_bytes: int) -> dict[str, int]:
    """Split the archive into one tar per volume (`into/<suffix>.tar`, entries `<mount directory>/...`, as the
    engine unpacks them) and return the bytes each holds. Refused: an archive that is not a .tar.gz, entries
    outside the volumes' directories, absolute or `..` paths, links leaving the archive, devices, or more data
    than the plan's disk allowance. Set-id bits are dropped."""
    by_top = {PurePosixPath(mount).name: suffix for suffix, mount in volumes.items()}
    expected = ", ".join(f"{top}/" for top in by_top)
    into.mkdir(parents=True, exist_ok=True)
    outputs = {suffix: tarfile.open(into / f"{suffix}.tar", "w:") for suffix in volumes}
    sizes = dict.fromkeys(volumes, 0)
    entries = dict.fromkeys(volumes, 0)
    total = 0
    try:
        with tarfile.open(source, "r:gz") as archive:
            for member in archive:
                path = PurePosixPath(member.name)  # "./wp-content/x" reads as "wp-content/x"
                if path.is_absolute() or ".." in path.parts:
                    raise ImportRejected(f"The files archive holds an unsafe path: {member.name}")
                if not path.parts:
                    continue  # the archive's own "./" entry
                top = path.parts[0]
                if top not in by_top:
                    raise ImportRejected(
                        f"The files archive must hold {expected} at its top (as a download from here does); "
                        f"it holds {top}."
                    )
                if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                    raise ImportRejected(f"The files archive holds a device or pipe: {member.name}")
                if member.issym() or member.islnk():
                    target = PurePosixPath(member.linkname)
                    if target.is_absolute() or ".." in target.parts:
                        raise ImportRejected(f"The files archive holds a link leaving it: {member.name}")
                total += member.size
                if total > limit_bytes:
                    raise ImportRejected(
                        f"The files archive unpacks to more than your plan's disk allowance "
                        f"({filesizeformat(limit_bytes)})."
                    )
                member.name = str(path)
                if member.islnk():
                    member.linkname = str(PurePosixPath(member.linkname))
                member.mode &= 0o777
                suffix = by_top[top]
                outputs[suffix].addfile(member, archive.extractfile(member) if member.isfile() else None)
                sizes[suffix] += member.size
                entries[suffix] += 1
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ImportRejected(f"The files archive is not a readable .tar.gz file ({exc}).") from None
    finally:
        for output in outputs.values():
            output.close()
    empty = [f"{top}/" for top, suffix in by_top.items() if not entries[suffix]]
    if empty:
        raise ImportRejected(f"The files archive holds nothing under {', '.join(empty)}.")
    return sizes


# --- The steps --------------------------------------------------------------------------------------------


def _import_of(job_id: int) -> StoreImport:
    return StoreImport.objects.select_related("database_upload", "files_upload").get(job_id=job_id)


def _staging_name(store_import: StoreImport) -> str:
    return f"import-{store_import.pk}"


def step_check(store: Store, log: Log, *, job_id: int) -> None:
    """Unpack and check both uploads into the staging directory; the store is not touched yet."""
    store_import = _import_of(job_id)
    staging = staging_directory(_staging_name(store_import))
    allowance = disk_allowance_bytes(store)
    try:
        dump_bytes = dump_check(
            upload_path(store_import.database_upload),
            into=staging / DB_DUMP,
            platform=store.platform,
            limit_bytes=allowance,
        )
        sizes = files_check(
            upload_path(store_import.files_upload),
            into=staging / "files",
            volumes=web_volumes(store),
            limit_bytes=allowance - dump_bytes,
        )
    except ImportRejected as exc:
        StoreImport.objects.filter(pk=store_import.pk).update(error=str(exc))
        raise
    log(f"dump: {dump_bytes} bytes; files: {', '.join(f'{k} {v} bytes' for k, v in sizes.items())}")


def step_pre_backup(store: Store, log: Log, *, job_id: int) -> None:
    store_import = _import_of(job_id)
    pre = backup_in_place(
        store,
        log,
        kind=BackupRun.Kind.PRE_IMPORT,
        created_by=store_import.created_by,
        job_id=job_id,
        note=f"before import {store_import.pk}",
        what="import",
        link=lambda run: StoreImport.objects.filter(pk=store_import.pk).update(pre_import_backup=run),
    )
    log(f"snapshot {pre.snapshot_id[:8]} keeps the store as it was")


def step_stop(store: Store, log: Log, *, job_id: int) -> None:
    app_stop(store, log)


def step_database(store: Store, log: Log, *, job_id: int) -> None:
    staging = staging_path(_staging_name(_import_of(job_id)))
    database_import(container=stack_for(store).container_name("db"), dump=staging / DB_DUMP, base_url=store.host.engine)
    log("database replaced by the uploaded dump")


def step_files(store: Store, log: Log, *, job_id: int) -> None:
    staging = staging_path(_staging_name(_import_of(job_id)))
    stack = stack_for(store)
    for suffix, mount in web_volumes(store).items():
        docker_client.volume_contents_replace(
            volume=stack.volume_name(suffix),
            top_directory=PurePosixPath(mount).name,
            tar_path=str(staging / "files" / f"{suffix}.tar"),
            image=settings.DOCKER_BASE_IMAGE,
            labels={**stack.labels, "shophosting.role": "restore-helper"},
            base_url=store.host.engine,
        )
        log(f"{suffix}: files replaced by the uploaded archive's")


def step_start(store: Store, log: Log, *, job_id: int) -> None:
    containers_start(store, log)  # empties the store's cache first: it holds the old store's rows


def step_answers(store: Store, log: Log, *, job_id: int) -> None:
    wait_http(store, log, timeout=settings.STORE_WEB_READY_TIMEOUT)


def step_put_back(store: Store, log: Log, *, job_id: int) -> None:
    """The undo: after a failure past the pre-import backup, the store's database and files become that
    backup's again, and the store is started. Before it, nothing was changed."""
    store_import = _import_of(job_id)
    changed = JobStep.objects.filter(
        job_id=job_id, name__in=CHANGING_STEPS, status__in=[JobStep.Status.SUCCEEDED, JobStep.Status.FAILED]
    ).exists()
    pre = store_import.pre_import_backup
    if not changed or pre is None or pre.status != RunStatus.SUCCEEDED:
        log("nothing was changed: the store is as it was")
        return
    staging = staging_directory(f"{_staging_name(store_import)}-put-back")
    try:
        app_stop(store, log)
        database_put_back(store, log, snapshot_id=pre.snapshot_id, staging=staging)
        files_put_back(store, log, snapshot_id=pre.snapshot_id, staging=staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    containers_start(store, log)
    log(f"the store is back as snapshot {pre.snapshot_id[:8]} kept it")


# --- The kind's hooks -------------------------------------------------------------------------------------


def on_start(job_id: int) -> None:
    _transition(_import_of(job_id).pk, RunStatus.RUNNING, started_at=timezone.now())


def on_success(job_id: int) -> None:
    _transition(_import_of(job_id).pk, RunStatus.SUCCEEDED, finished_at=timezone.now())


def on_failure(job_id: int, summary: str) -> None:
    store_import = _import_of(job_id)
    if store_import.status in ACTIVE_STATUSES:
        # A rejected upload already says what was wrong (step_check); anything else is the platform's.
        error = store_import.error or "The import failed; your store was put back as it was. Our team can see why."
        _transition(store_import.pk, RunStatus.FAILED, note=summary, error=error, finished_at=timezone.now())


def after(job_id: int, succeeded: bool) -> None:
    """The staging copy and both uploads go, whatever the outcome (a failed import is uploaded again)."""
    store_import = _import_of(job_id)
    shutil.rmtree(staging_path(_staging_name(store_import)), ignore_errors=True)
    for upload in (store_import.database_upload, store_import.files_upload):
        _upload_remove(upload)


def retry(job_id: int, actor: User | None) -> ProvisioningJob:
    raise InvalidTransition("An import's uploads are removed when it ends: upload the files again to retry it.")


# --- The request ------------------------------------------------------------------------------------------


def import_request(
    *, store_id: int, database_upload_id: int, files_upload_id: int, actor: User | None = None
) -> StoreImport:
    """Queue an import of two complete uploads of this store (a dump and a files archive, each used once).
    UploadRefused says what is missing; BackupConflict while another operation runs or the store is not live."""
    uploads = {
        upload.pk: upload
        for upload in ImportUpload.objects.filter(
            store_id=store_id, pk__in=[database_upload_id, files_upload_id], removed_at=None
        )
    }
    database, files = uploads.get(database_upload_id), uploads.get(files_upload_id)
    if database is None or database.part != ImportUpload.Part.DATABASE:
        raise UploadRefused("Upload the database dump first.")
    if files is None or files.part != ImportUpload.Part.FILES:
        raise UploadRefused("Upload the files archive first.")
    for upload in (database, files):
        if not upload.complete:
            raise UploadRefused(f"{upload.filename} is not completely uploaded yet ({upload.size_received} bytes).")
    with open(upload_path(files), "rb") as probe:
        if probe.read(2) != GZIP_MAGIC:
            raise UploadRefused(f"{files.filename} is not a .tar.gz archive.")
    with transaction.atomic():
        if (
            StoreImport.objects.filter(database_upload=database).exists()
            or StoreImport.objects.filter(files_upload=files).exists()
        ):
            raise UploadRefused("These uploads were imported already. Upload the files again.")
        try:
            job = job_enqueue(store_id=store_id, kind=KIND, actor=actor)
        except JobConflict as exc:
            raise BackupConflict(str(exc)) from None
        except InvalidTransition:
            store = Store.objects.get(pk=store_id)
            raise BackupConflict(
                f"The store is {store.get_status_display().lower()}; a store is imported into once it is live."
            ) from None
        store_import = StoreImport.objects.create(
            store_id=store_id, database_upload=database, files_upload=files, created_by=actor, job=job
        )
        TransferEvent.objects.create(store_import=store_import, new_status=store_import.status, note="import requested")
    return store_import
