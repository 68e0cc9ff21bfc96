"""Reads for the downloads and import pages: a store's prepared downloads (with fresh signed links for those
still kept) and its imports. From the database only."""

from dataclasses import dataclass

from backups.models import BackupDownload, RunStatus, StoreImport
from backups.services.download import download_link
from stores.models import Store


@dataclass
class DownloadRow:
    download: BackupDownload
    database_link: str | None  # signed now: valid for BACKUP_DOWNLOAD_LINK_MINUTES from this page view
    files_link: str | None


def store_download_list(store: Store, *, limit: int = 20) -> list[DownloadRow]:
    rows = []
    for download in store.downloads.select_related("backup_run")[:limit]:
        ready = download.status == RunStatus.SUCCEEDED and download.removed_at is None
        rows.append(
            DownloadRow(
                download=download,
                database_link=download_link(download, "database") if ready else None,
                files_link=download_link(download, "files") if ready else None,
            )
        )
    return rows


def store_import_list(store: Store, *, limit: int = 10) -> list[StoreImport]:
    return list(store.imports.select_related("database_upload", "files_upload")[:limit])


def download_of_store(store: Store, download_id: int) -> BackupDownload | None:
    return BackupDownload.objects.filter(store=store, pk=download_id).first()
