"""The `download` job kind: one of a store's snapshots prepared for the merchant to take away, as the database
dump (`database.sql.gz`) and the files (`files.tar.gz`, each web volume under its mount's directory name, e.g.
`wp-content/`); the signed links that serve them; and their removal once BACKUP_DOWNLOAD_KEEP_HOURS passed.

The archives are read from the repository (restic restore into the staging directory), never from the live
store: what the merchant takes away is exactly what the snapshot holds, and the store is not touched.

A link is `django.core.signing.TimestampSigner` over (download id, part): it works without a session, so a
merchant can hand it to `curl` on a server, but only for BACKUP_DOWNLOAD_LINK_MINUTES; the backups page signs
fresh ones each time it is drawn. Every file served is audited."""

import gzip
import shutil
import tarfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from backups import restic
from backups.models import ACTIVE_STATUSES, RUN_ALLOWED_FROM, BackupDownload, RunStatus, TransferEvent
from backups.selectors import store_snapshot
from backups.services.records import BackupConflict, SnapshotNotFound
from backups.services.stack_io import DB_DUMP, staging_directory, staging_path
from provisioning.exceptions import JobConflict
from provisioning.kinds import Log
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue
from shophosting.core.transitions import transition
from stores.exceptions import InvalidTransition
from stores.models import Store

KIND = "download"  # the job kind (backups.transfer_kinds)
PARTS = {"database": "database.sql.gz", "files": "files.tar.gz"}
LINK_SALT = "backups.download-link"
# gzip's default level 9 costs about twice the time of 6 for a few percent on dumps and media.
COMPRESS_LEVEL = 6
COPY_BUFFER = 1024 * 1024
EXPIRED = "This download link has expired. Get a new one from the store's backups page."
INVALID = "This download link is not valid. Copy it again from the store's backups page."


class DownloadLinkInvalid(Exception):
    """A link that was not made here, or was changed: refused."""


class DownloadLinkExpired(Exception):
    """A genuine link older than BACKUP_DOWNLOAD_LINK_MINUTES, or one whose archives were removed."""


def download_directory(download: BackupDownload) -> Path:
    return Path(settings.BACKUP_TRANSFER_DIR) / "downloads" / str(download.pk)


def _staging_name(download: BackupDownload) -> str:
    return f"download-{download.pk}"


def _download_of(job_id: int) -> BackupDownload:
    return BackupDownload.objects.get(job_id=job_id)


def _transition(download_id: int, to: str, *, note: str = "", **fields) -> BackupDownload:
    return transition(
        BackupDownload,
        download_id,
        to,
        allowed_from=RUN_ALLOWED_FROM,
        event_model=TransferEvent,
        event_link="download",
        note=note[:5000],
        **fields,
    )


# --- The steps --------------------------------------------------------------------------------------------


def step_read(store: Store, log: Log, *, job_id: int) -> None:
    """The snapshot's dump and volume archives, out of the repository into an empty staging directory."""
    download = _download_of(job_id)
    staging = staging_directory(_staging_name(download))
    restic.restore(download.snapshot_id, into=staging)
    volumes = sorted(path.name for path in (staging / "files").glob("*.tar"))
    if not (staging / DB_DUMP).is_file():
        raise restic.ResticError(f"snapshot {download.snapshot_id[:8]} holds no {DB_DUMP}")
    log(f"read from snapshot {download.snapshot_id[:8]}: {DB_DUMP}, {', '.join(volumes) or 'no volume archives'}")


def step_pack(store: Store, log: Log, *, job_id: int) -> None:
    """database.sql.gz and files.tar.gz in the download's directory (written under temporary names and
    renamed, so a link never serves half an archive)."""
    download = _download_of(job_id)
    staging = staging_path(_staging_name(download))
    target = download_directory(download)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, mode=0o700)

    database = target / PARTS["database"]
    with open(staging / DB_DUMP, "rb") as source, gzip.open(f"{database}.part", "wb", COMPRESS_LEVEL) as packed:
        shutil.copyfileobj(source, packed, COPY_BUFFER)
    Path(f"{database}.part").rename(database)

    files = target / PARTS["files"]
    with tarfile.open(f"{files}.part", "w:gz", compresslevel=COMPRESS_LEVEL) as packed:
        for volume_archive in sorted((staging / "files").glob("*.tar")):
            # Each engine archive already names its entries `<mount directory>/...`: copied member by member
            # (ownership, modes and times kept), so the merchant gets one archive of every volume.
            with tarfile.open(volume_archive, "r:") as volume:
                for member in volume:
                    packed.addfile(member, volume.extractfile(member) if member.isfile() else None)
    Path(f"{files}.part").rename(files)

    BackupDownload.objects.filter(pk=download.pk).update(
        database_bytes=database.stat().st_size, files_bytes=files.stat().st_size
    )
    log(f"packed {database.name} ({database.stat().st_size} bytes) and {files.name} ({files.stat().st_size} bytes)")


# --- The kind's hooks -------------------------------------------------------------------------------------


def on_start(job_id: int) -> None:
    _transition(_download_of(job_id).pk, RunStatus.RUNNING, started_at=timezone.now())


def on_success(job_id: int) -> None:
    now = timezone.now()
    _transition(
        _download_of(job_id).pk,
        RunStatus.SUCCEEDED,
        finished_at=now,
        expires_at=now + timedelta(hours=settings.BACKUP_DOWNLOAD_KEEP_HOURS),
    )


def on_failure(job_id: int, summary: str) -> None:
    download = _download_of(job_id)
    if download.status in ACTIVE_STATUSES:
        _transition(download.pk, RunStatus.FAILED, note=summary, error=summary[:10000], finished_at=timezone.now())


def after(job_id: int, succeeded: bool) -> None:
    """The staging copy always goes; a failed download's partial archives too."""
    download = _download_of(job_id)
    shutil.rmtree(staging_path(_staging_name(download)), ignore_errors=True)
    if not succeeded:
        shutil.rmtree(download_directory(download), ignore_errors=True)


def retry(job_id: int, actor: User | None) -> ProvisioningJob:
    download = _download_of(job_id)
    return download_request(store_id=download.store_id, snapshot_id=download.snapshot_id, actor=actor).job


# --- Requests, links, clean-up ----------------------------------------------------------------------------


def download_request(*, store_id: int, snapshot_id: str, actor: User | None = None) -> BackupDownload:
    """Queue a download of one of the store's kept snapshots (as the records know them; the job reads it from
    the repository). SnapshotNotFound for any other id; BackupConflict while another operation runs."""
    store = Store.objects.get(pk=store_id)
    run = store_snapshot(store, snapshot_id)
    if run is None:
        raise SnapshotNotFound(f"snapshot {snapshot_id[:8]} is not one of store {store_id}'s kept backups")
    with transaction.atomic():
        try:
            job = job_enqueue(store_id=store_id, kind=KIND, actor=actor)
        except JobConflict as exc:
            raise BackupConflict(str(exc)) from None
        except InvalidTransition:
            raise BackupConflict(
                f"The store is {store.get_status_display().lower()}; its backups cannot be downloaded now."
            ) from None
        download = BackupDownload.objects.create(
            store_id=store_id, backup_run=run, snapshot_id=run.snapshot_id, created_by=actor, job=job
        )
        TransferEvent.objects.create(download=download, new_status=download.status, note="download requested")
    return download


def download_link(download: BackupDownload, part: str) -> str:
    """A path that serves one part ("database" or "files") for BACKUP_DOWNLOAD_LINK_MINUTES, without a session."""
    if part not in PARTS:
        raise ValueError(f"unknown download part {part!r}")
    token = signing.TimestampSigner(salt=LINK_SALT).sign_object({"download": download.pk, "part": part})
    return reverse("backup_downloads:file", args=[token])


@dataclass(frozen=True)
class DownloadFile:
    download: BackupDownload
    part: str
    path: Path
    filename: str  # what the merchant's browser saves it as


def download_open(*, token: str) -> DownloadFile:
    """The file a link names, if the link was signed here, is younger than BACKUP_DOWNLOAD_LINK_MINUTES and
    its download is still kept. DownloadLinkInvalid or DownloadLinkExpired otherwise."""
    signer = signing.TimestampSigner(salt=LINK_SALT)
    try:
        value = signer.unsign_object(token, max_age=timedelta(minutes=settings.BACKUP_DOWNLOAD_LINK_MINUTES))
    except signing.SignatureExpired:
        raise DownloadLinkExpired(EXPIRED) from None
    except signing.BadSignature:
        raise DownloadLinkInvalid(INVALID) from None
    if not isinstance(value, dict) or value.get("part") not in PARTS or not isinstance(value.get("download"), int):
        raise DownloadLinkInvalid(INVALID)
    download = (
        BackupDownload.objects.select_related("store").filter(pk=value["download"], status=RunStatus.SUCCEEDED).first()
    )
    path = download_directory(download) / PARTS[value["part"]] if download else None
    if download is None or download.removed_at is not None or not path.is_file():
        raise DownloadLinkExpired("This download has been removed. Prepare a new one from the store's backups page.")
    date = download.backup_run.finished_at if download.backup_run and download.backup_run.finished_at else None
    stamp = (date or download.created_at).strftime("%Y%m%d-%H%M")
    return DownloadFile(
        download=download,
        part=value["part"],
        path=path,
        filename=f"{download.store.domain}-{stamp}-{PARTS[value['part']]}",
    )


def downloads_remove_expired(*, now=None) -> list[int]:
    """Remove the archives of every download past its `expires_at`; returns their ids."""
    now = now or timezone.now()
    removed = []
    for download in BackupDownload.objects.filter(removed_at=None, expires_at__lte=now):
        shutil.rmtree(download_directory(download), ignore_errors=True)
        BackupDownload.objects.filter(pk=download.pk).update(removed_at=now)
        removed.append(download.pk)
    return removed
