"""The periodic clean-up of what merchants took away and brought in: prepared downloads past their keep time,
and uploads no import took."""

from backups.services.download import downloads_remove_expired
from backups.services.store_import import uploads_remove_abandoned


def transfers_clean_up(*, now=None) -> dict[str, list[int]]:
    """Remove expired downloads' archives and abandoned uploads; returns the ids of each."""
    return {"downloads": downloads_remove_expired(now=now), "uploads": uploads_remove_abandoned(now=now)}
