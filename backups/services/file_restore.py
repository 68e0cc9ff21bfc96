"""A single file or folder put back from a snapshot, chosen from a listing of the snapshot's files.

Volumes stay in the snapshot as the engine's tar archives (ownership and modes survive whatever user the worker
runs as), so `restic ls` would show one `files/<volume>.tar` per volume. What makes them browsable is a file
list per volume, read from the archive's headers when the backup is taken (`file_lists_record`, called by the
backup's files step) and kept with the run (`SnapshotFileList`): the browse page reads the database only.

The `restore_path` job streams the volume's archive out of the repository (`restic.dump_stream`), keeps only
the chosen entries on the way (nothing else is written to disk), and lets the engine unpack them into the
volume, their ownership and modes kept. The snapshot's copies overwrite the store's; files the store has there
now that the snapshot had not are kept. Nothing else of the store is touched and it keeps running."""

import gzip
import json
import shutil
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from backups import restic
from backups.models import (
    ACTIVE_STATUSES,
    RUN_ALLOWED_FROM,
    BackupRun,
    FileRestore,
    RunStatus,
    SnapshotFileList,
    TransferEvent,
)
from backups.selectors import store_snapshot
from backups.services.records import BackupConflict, SnapshotNotFound
from backups.services.stack_io import staging_directory, staging_path, web_volumes
from provisioning import docker_client
from provisioning.exceptions import JobConflict
from provisioning.kinds import Log
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue
from provisioning.stacks import stack_for
from shophosting.core.transitions import transition
from stores.exceptions import InvalidTransition
from stores.models import Store

KIND = "restore_path"  # the job kind (backups.transfer_kinds)
SELECTED = "selected.tar"


# --- File lists, taken with each backup -------------------------------------------------------------------


def _kind(member: tarfile.TarInfo) -> str | None:
    if member.isdir():
        return "d"
    if member.issym() or member.islnk():
        return "l"
    return "f" if member.isfile() else None


def file_lists_record(run: BackupRun, files: Path, volumes: dict[str, str]) -> int:
    """Record each volume's file list from its archive in `files` (headers only: tarfile skips the data of a
    file on disk); returns the number of entries."""
    total = 0
    for suffix, mount in volumes.items():
        rows = []
        with tarfile.open(files / f"{suffix}.tar", "r:") as archive:
            for member in archive:
                kind = _kind(member)
                name = str(PurePosixPath(member.name))
                if kind is not None and name != ".":
                    rows.append([name, kind, member.size, int(member.mtime)])
        SnapshotFileList.objects.update_or_create(
            backup_run=run,
            volume=suffix,
            defaults={
                "top_directory": PurePosixPath(mount).name,
                "entries": gzip.compress(json.dumps(rows, separators=(",", ":")).encode()),
                "entry_count": len(rows),
            },
        )
        total += len(rows)
    return total


@dataclass(frozen=True)
class FileEntry:
    path: str  # `<mount directory>/...`, as the archive names it
    kind: str  # "d", "f" or "l"
    size: int
    modified: datetime

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


def _rows(file_list: SnapshotFileList) -> list[FileEntry]:
    return [
        FileEntry(path=path, kind=kind, size=size, modified=datetime.fromtimestamp(mtime, tz=UTC))
        for path, kind, size, mtime in json.loads(gzip.decompress(bytes(file_list.entries)))
    ]


def snapshot_entry(run: BackupRun, path: str) -> tuple[SnapshotFileList, FileEntry] | None:
    """The volume's list and the entry `path` names in this snapshot; None if the snapshot has no such entry."""
    top = PurePosixPath(path).parts[0] if path and not path.startswith("/") else None
    file_list = run.file_lists.filter(top_directory=top).first() if top else None
    if file_list is None:
        return None
    entry = next((entry for entry in _rows(file_list) if entry.path == path), None)
    return (file_list, entry) if entry else None


def snapshot_folder(run: BackupRun, path: str) -> list[FileEntry] | None:
    """The entries directly inside folder `path` ("" for the volumes themselves), folders first; None when
    the snapshot holds no such folder."""
    if not path:
        return [
            FileEntry(path=file_list.top_directory, kind="d", size=0, modified=run.finished_at or run.created_at)
            for file_list in run.file_lists.order_by("top_directory")
        ]
    found = snapshot_entry(run, path)
    if found is None or found[1].kind != "d":
        return None
    children = [entry for entry in _rows(found[0]) if str(PurePosixPath(entry.path).parent) == path]
    return sorted(children, key=lambda entry: (entry.kind != "d", entry.name.lower()))


# --- The steps --------------------------------------------------------------------------------------------


def _restore_of(job_id: int) -> FileRestore:
    return FileRestore.objects.get(job_id=job_id)


def _staging_name(file_restore: FileRestore) -> str:
    return f"file-restore-{file_restore.pk}"


def _transition(file_restore_id: int, to: str, *, note: str = "", **fields) -> FileRestore:
    return transition(
        FileRestore,
        file_restore_id,
        to,
        allowed_from=RUN_ALLOWED_FROM,
        event_model=TransferEvent,
        event_link="file_restore",
        note=note[:5000],
        **fields,
    )


def select_entries(stream: BinaryIO, *, path: str, into: Path) -> int:
    """Copy the entries at or under `path` from a volume archive read as a stream into the tar `into`, named
    relative to the volume's mount (the engine unpacks it there); returns how many were copied."""
    top = PurePosixPath(path).parts[0]
    copied = 0
    with tarfile.open(fileobj=stream, mode="r|") as archive, tarfile.open(into, "w:") as selected:
        for member in archive:
            name = str(PurePosixPath(member.name))
            if name != path and not name.startswith(f"{path}/"):
                continue
            relative = PurePosixPath(name).relative_to(top)
            if str(relative) == ".":
                continue  # the volume's own directory: its mount point exists already
            member.name = str(relative)
            if member.islnk():
                member.linkname = str(PurePosixPath(member.linkname).relative_to(top))
            selected.addfile(member, archive.extractfile(member) if member.isfile() else None)
            copied += 1
    return copied


def step_read(store: Store, log: Log, *, job_id: int) -> None:
    file_restore = _restore_of(job_id)
    staging = staging_directory(_staging_name(file_restore))
    copied = restic.dump_stream(
        file_restore.snapshot_id,
        f"/files/{file_restore.volume}.tar",
        consume=lambda stream: select_entries(stream, path=file_restore.path, into=staging / SELECTED),
    )
    if not copied:
        raise restic.ResticError(f"{file_restore.path} is not in snapshot {file_restore.snapshot_id[:8]}")
    FileRestore.objects.filter(pk=file_restore.pk).update(restored_count=copied)
    log(f"{copied} entries read from snapshot {file_restore.snapshot_id[:8]}")


def step_put(store: Store, log: Log, *, job_id: int) -> None:
    file_restore = _restore_of(job_id)
    mount = web_volumes(store)[file_restore.volume]
    docker_client.container_archive_put(
        name=stack_for(store).container_name("web"),
        path=mount,
        tar_path=str(staging_path(_staging_name(file_restore)) / SELECTED),
        base_url=store.host.engine,
    )
    log(f"{file_restore.path} put back ({file_restore.restored_count} entries)")


# --- The kind's hooks -------------------------------------------------------------------------------------


def on_start(job_id: int) -> None:
    _transition(_restore_of(job_id).pk, RunStatus.RUNNING, started_at=timezone.now())


def on_success(job_id: int) -> None:
    _transition(_restore_of(job_id).pk, RunStatus.SUCCEEDED, finished_at=timezone.now())


def on_failure(job_id: int, summary: str) -> None:
    file_restore = _restore_of(job_id)
    if file_restore.status in ACTIVE_STATUSES:
        _transition(file_restore.pk, RunStatus.FAILED, note=summary, error=summary[:10000], finished_at=timezone.now())


def after(job_id: int, succeeded: bool) -> None:
    shutil.rmtree(staging_path(_staging_name(_restore_of(job_id))), ignore_errors=True)


def retry(job_id: int, actor: User | None) -> ProvisioningJob:
    file_restore = _restore_of(job_id)
    return file_restore_request(
        store_id=file_restore.store_id, snapshot_id=file_restore.snapshot_id, path=file_restore.path, actor=actor
    ).job


# --- The request ------------------------------------------------------------------------------------------


def file_restore_request(*, store_id: int, snapshot_id: str, path: str, actor: User | None = None) -> FileRestore:
    """Queue putting back one file or folder (`path` as the snapshot's file list names it) of one of the
    store's kept snapshots. SnapshotNotFound for another snapshot or a path it does not list; BackupConflict
    while another operation runs."""
    store = Store.objects.get(pk=store_id)
    run = store_snapshot(store, snapshot_id)
    found = snapshot_entry(run, path) if run else None
    if found is None:
        raise SnapshotNotFound(f"{path!r} is not in a kept backup {snapshot_id[:8]} of store {store_id}")
    file_list, _ = found
    with transaction.atomic():
        try:
            job = job_enqueue(store_id=store_id, kind=KIND, actor=actor)
        except JobConflict as exc:
            raise BackupConflict(str(exc)) from None
        except InvalidTransition:
            raise BackupConflict(
                f"The store is {store.get_status_display().lower()}; its files cannot be restored now."
            ) from None
        file_restore = FileRestore.objects.create(
            store_id=store_id,
            backup_run=run,
            snapshot_id=run.snapshot_id,
            volume=file_list.volume,
            path=path,
            created_by=actor,
            job=job,
        )
        TransferEvent.objects.create(file_restore=file_restore, new_status=file_restore.status, note=f"restore {path}")
    return file_restore
