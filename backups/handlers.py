"""Reactions to other apps' events, registered in BackupsConfig.ready(). Each calls one backups service."""

import logging
from collections.abc import Callable
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups.models import BackupRun
from backups.services.backup import backup_enqueue
from backups.services.records import BackupConflict

logger = logging.getLogger(__name__)


def store_live_first_backup(*, store_id: int, log: Callable[[str], None]) -> None:
    """A new store's first backup, queued once the transaction that made the store live has committed
    (until then its provisioning job holds the store), or FIRST_BACKUP_DELAY_SECONDS later
    (backups.jobs.first_backup_take, on the backups queue's scheduler): the other new stores of a burst of
    orders are provisioned meanwhile without a backup's load beside them. A store busy by then is left to the
    next scheduled run, which takes every active store that has no backup yet."""
    delay = settings.FIRST_BACKUP_DELAY_SECONDS
    if delay > 0:
        due = timezone.now() + timedelta(seconds=delay)

        def schedule() -> None:
            try:
                django_rq.get_queue("backups").enqueue_in(
                    timedelta(seconds=delay), "backups.jobs.first_backup_take", store_id
                )
            except Exception:  # The job has succeeded already; the scheduled run still covers the store.
                logger.exception("store %s: the first backup could not be scheduled", store_id)

        transaction.on_commit(schedule, robust=True)
        log(
            f"first backup due at {due:%H:%M:%S} UTC ({delay} s after going live); the next ones follow on its schedule"
        )
        return

    def queue() -> None:
        try:
            run = backup_enqueue(store_id=store_id, kind=BackupRun.Kind.SCHEDULED)
        except BackupConflict as exc:
            log(f"the store was busy when it went live ({exc}); the next scheduled backup run takes its first backup")
            return
        except Exception as exc:
            # The job has succeeded already; the scheduled run still covers the store.
            logger.exception("store %s: the first backup could not be queued", store_id)
            log(f"the first backup could not be queued ({type(exc).__name__}); the next scheduled backup run takes it.")
            return
        log(f"first backup queued (backup #{run.pk}); the next ones follow on the store's schedule")

    transaction.on_commit(queue, robust=True)
