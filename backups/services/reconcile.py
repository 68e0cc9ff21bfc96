"""The BackupRun records kept matching the repository (pages read the records, never restic)."""

import logging
import re
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from backups import restic
from backups.models import ACTIVE_STATUSES, BackupEvent, BackupRun, RunStatus
from stores.models import Store

logger = logging.getLogger(__name__)
Kind = BackupRun.Kind


def snapshots_reconcile(*, dry_run: bool = False) -> dict[str, list[str]]:
    """Make the BackupRun records match this installation's snapshots in the repository. Run by the
    `backups` queue (shophosting/cron.py, `backups_reconcile`), never in a web request: pages read the records.

    - "recorded": a snapshot no record names gets one (kind from its tags), if its store exists, the
      snapshot's customer tag is that store's customer and the snapshot is not older than the store;
    - "adopted": a record of a snapshot made before tags were namespaced (found by its recorded id, with no
      installation tag) keeps it: restic adds this installation's tags and the record takes the new id;
    - "forgotten": a record whose snapshot is gone (retention, a forget by hand) is marked forgotten;
      "kept": one marked forgotten whose snapshot is there after all is unmarked.
    Records finished after the listing began, and stores with a backup under way, wait for the next run.
    A repository that cannot be read raises ResticError and changes nothing."""
    listed_at = timezone.now()
    present = {snapshot["id"]: snapshot for snapshot in restic.snapshots()}
    changes: dict[str, list[str]] = {"recorded": [], "adopted": [], "forgotten": [], "kept": [], "skipped": []}
    rows = list(
        BackupRun.objects.filter(status=RunStatus.SUCCEEDED)
        .exclude(snapshot_id="")
        .values_list("pk", "snapshot_id", "forgotten_at", "finished_at", "created_at")
    )
    missing = {
        snapshot_id
        for _, snapshot_id, forgotten_at, finished_at, created_at in rows
        if forgotten_at is None and snapshot_id not in present and (finished_at or created_at) <= listed_at
    }
    legacy = {snapshot["id"]: snapshot for snapshot in restic.snapshots_by_id(sorted(missing))} if missing else {}
    for snapshot_id in sorted(missing):
        tags = legacy.get(snapshot_id, {}).get("tags") or []
        if snapshot_id in legacy and not any(tag.startswith("installation:") for tag in tags):
            try:
                if not dry_run:
                    _snapshot_adopt(snapshot_id, tags=[tag for tag in tags if tag and "," not in tag])
            except restic.ResticError as exc:  # e.g. a backup holds the repository lock: the next run adopts it
                logger.warning("snapshot %s not adopted yet: %s", snapshot_id[:8], exc)
                changes["skipped"].append(snapshot_id)
            else:
                changes["adopted"].append(snapshot_id)
        else:
            changes["forgotten"].append(snapshot_id)
    changes["kept"] = sorted(
        {snapshot_id for _, snapshot_id, forgotten, *_ in rows if forgotten and snapshot_id in present}
    )
    recorded = set(BackupRun.objects.exclude(snapshot_id="").values_list("snapshot_id", flat=True))
    for snapshot_id, snapshot in present.items():
        if snapshot_id in recorded:
            continue
        refused = _snapshot_record(snapshot, dry_run=dry_run)
        changes["skipped" if refused else "recorded"].append(snapshot_id)
        if refused:
            logger.info("snapshot %s not recorded: %s", snapshot_id[:8], refused)
    if not dry_run:
        now = timezone.now()
        BackupRun.objects.filter(snapshot_id__in=changes["forgotten"], forgotten_at=None).update(forgotten_at=now)
        BackupRun.objects.filter(snapshot_id__in=changes["kept"]).update(forgotten_at=None)
    return changes


def _snapshot_adopt(snapshot_id: str, *, tags: list[str]) -> None:
    new_id = restic.tags_adopt(snapshot_id, tags=tags)
    with transaction.atomic():
        for run in BackupRun.objects.select_for_update().filter(snapshot_id=snapshot_id):
            run.snapshot_id = new_id
            run.save(update_fields=["snapshot_id"])
            BackupEvent.objects.create(
                backup_run=run,
                old_status=run.status,
                new_status=run.status,
                note=f"snapshot {snapshot_id[:8]} tagged for this installation; restic's new id {new_id[:8]}",
            )


STORE_TAG = re.compile(r"store-([0-9]+)")


def _snapshot_record(snapshot: dict, *, dry_run: bool) -> str:
    """Record a snapshot found in the repository as a succeeded BackupRun; returns why not, or ""."""
    tags = snapshot.get("tags") or []
    kind = next((kind for kind in Kind.values if kind in tags and kind != Kind.FOUND), Kind.FOUND)
    store_ids = {int(match[1]) for tag in tags if (match := STORE_TAG.fullmatch(tag))}
    taken_at = datetime.fromisoformat(snapshot["time"])
    with transaction.atomic():
        store = None
        if len(store_ids) > 1:
            return "tagged with several stores"
        if store_ids:
            # Under the store's row lock, as backup_enqueue takes it: a backup queued or running now may be
            # about to record this very snapshot.
            store = Store.objects.select_for_update().filter(pk=store_ids.pop()).first()
            if store is None:
                return "its store is not in this database"
            if [tag for tag in tags if tag.startswith("customer-")] != [f"customer-{store.customer_id}"]:
                return f"its customer tag is not store {store.pk}'s customer"
            if taken_at < store.created_at:
                return f"older than store {store.pk}"
            if store.backup_runs.filter(status__in=ACTIVE_STATUSES).exists():
                return f"a backup of store {store.pk} is under way"
        elif kind in (Kind.SYSTEM, Kind.CODE):
            if BackupRun.objects.filter(store=None, kind=kind, status__in=ACTIVE_STATUSES).exists():
                return f"a {kind} backup is under way"
        else:
            return "neither a store's nor a platform snapshot"
        if BackupRun.objects.filter(snapshot_id=snapshot["id"]).exists():
            return "recorded meanwhile"
        if dry_run:
            return ""
        run = BackupRun.objects.create(
            store=store,
            kind=kind,
            status=RunStatus.SUCCEEDED,
            snapshot_id=snapshot["id"],
            size_bytes=(snapshot.get("summary") or {}).get("total_bytes_processed"),
            finished_at=taken_at,
        )
        BackupEvent.objects.create(
            backup_run=run, new_status=run.status, note="found in the repository with no record: recorded"
        )
    return ""
