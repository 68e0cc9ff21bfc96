"""Writes to status notices. Each clears the status page's cache, so the public page shows a change at once."""

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from shophosting.status.models import StatusNotice
from shophosting.status.selectors import CACHE_KEY


def status_page_cache_clear() -> None:
    transaction.on_commit(lambda: cache.delete(CACHE_KEY))


def notice_save(*, notice: StatusNotice, actor=None) -> StatusNotice:
    notice.full_clean(exclude=["created_by"])
    if notice.pk is None and actor is not None:
        notice.created_by = actor
    notice.save()
    status_page_cache_clear()
    return notice


def notices_close(*, notice_ids: list[int]) -> int:
    """Close the open ones among notice_ids now; returns how many were closed."""
    with transaction.atomic():
        closed = StatusNotice.objects.filter(pk__in=notice_ids, closed_at__isnull=True).update(closed_at=timezone.now())
        status_page_cache_clear()
    return closed
