"""The periodic clean-up of what merchants took away and brought in: prepared downloads past their keep time,
uploads no import took, and the file lists of snapshots retention has forgotten."""

from backups.models import SnapshotFileList
from backups.services.download import downloads_remove_expired
from backups.services.store_import import uploads_remove_abandoned


def transfers_clean_up(*, now=None) -> dict[str, list[int]]:
    """Remove expired downloads' archives, abandoned uploads, and file lists of forgotten snapshots (nothing
    can be restored from those); returns the ids of each."""
    forgotten = SnapshotFileList.objects.filter(backup_run__forgotten_at__isnull=False)
    file_lists = list(forgotten.values_list("pk", flat=True))
    SnapshotFileList.objects.filter(pk__in=file_lists).delete()
    return {
        "downloads": downloads_remove_expired(now=now),
        "uploads": uploads_remove_abandoned(now=now),
        "file_lists": file_lists,
    }
