"""Rollouts: a new web image for many stores, in batches of `update` jobs (provisioning.updates).

    Rollout:       running → completed            every chosen store had its turn
                   running → paused               an update failed (the store was put back); no new batch
                   paused  → running              staff resume: the next batch is queued
                   running | paused → cancelled   staff cancel: the stores still waiting are not updated
    RolloutStore:  pending → updating → updated | rolled_back | failed
                   failed → rolled_back           its reaped update was put back by an undo job (undo.py)
                   pending → skipped              busy, not active or already on the image when its turn came
                   pending → cancelled            the rollout was cancelled first

The next batch is queued when every update of the previous one has ended: each update's end (the kind's
on_success/on_failure, in the engine's transaction) records the store's outcome and, after that commit,
calls `rollout_advance`. `rollouts_advance` (every minute, shophosting.cron) does the same for a rollout
whose advance was lost (the worker died right after the commit)."""

import re

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from provisioning import docker_client
from provisioning.exceptions import DockerUnavailable, JobConflict
from provisioning.host_images import hosts_holding
from provisioning.models import Rollout, RolloutStore, StoreUpdate, UpdateEvent, UpdateStatus
from provisioning.updates import AlreadyOnImage, store_update_request
from shophosting.core.transitions import transition
from stores.exceptions import InvalidTransition
from stores.models import Host, Platform, Store

R = Rollout.Status
T = RolloutStore.Status
ROLLOUT_ALLOWED_FROM: dict[str, set[str]] = {
    R.RUNNING: {R.PAUSED},
    R.PAUSED: {R.RUNNING},
    R.COMPLETED: {R.RUNNING},
    R.CANCELLED: {R.RUNNING, R.PAUSED},
}
TARGET_ALLOWED_FROM: dict[str, set[str]] = {
    T.UPDATING: {T.PENDING},
    T.UPDATED: {T.UPDATING},
    T.ROLLED_BACK: {T.UPDATING, T.FAILED},  # from failed: its reaped update was put back by an undo job
    T.FAILED: {T.UPDATING},
    T.SKIPPED: {T.PENDING},
    T.CANCELLED: {T.PENDING},
}
# The stores a rollout to "all stores of a platform" takes: those with containers. A suspended one is
# skipped when its turn comes (an update needs a live store), and shows so.
ROLLOUT_STORE_STATUSES = (Store.Status.ACTIVE, Store.Status.SUSPENDED)
# name[:tag][@digest], as Docker reads a reference (lower-case repository path, a tag of word characters).
IMAGE_REFERENCE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
MAX_BATCH_SIZE = 50


def rollout_transition(rollout_id: int, to: str, *, actor: User | None = None, note: str = "") -> Rollout:
    """The one writer of Rollout.status (an UpdateEvent row each); the note is also kept on the rollout."""
    return transition(
        Rollout,
        rollout_id,
        to,
        allowed_from=ROLLOUT_ALLOWED_FROM,
        event_model=UpdateEvent,
        event_link="rollout",
        actor=actor,
        note=note[:5000],
        status_note=note[:5000],
    )


def _target_transition(target_id: int, to: str, *, note: str = "", **fields) -> RolloutStore:
    return transition(
        RolloutStore,
        target_id,
        to,
        allowed_from=TARGET_ALLOWED_FROM,
        event_model=UpdateEvent,
        event_link="rollout_store",
        note=note[:5000],
        **fields,
    )


# --- Starting a rollout -----------------------------------------------------------------------------------


def rollout_stores_for_platform(platform: str):
    return Store.objects.filter(platform=platform, status__in=ROLLOUT_STORE_STATUSES).order_by("pk")


def rollout_image_check(*, image: str, hosts: list[Host]) -> None:
    """The image must be a reference and be on the engine of every host that runs a chosen store: stores are
    never updated from a registry (nothing is pulled), so a missing image would fail every update."""
    if not IMAGE_REFERENCE.match(image or ""):
        raise ValidationError(f"“{image}” is not an image reference (such as shophosting/wordpress-official:6.5).")
    missing = []
    # The records first (the platform round refreshes them every minute, images_build at once): an engine is
    # asked only for the hosts not recorded as holding the image, e.g. one built seconds ago.
    recorded = hosts_holding(reference=image, hosts=hosts)
    for host in hosts:
        if host.pk in recorded:
            continue
        try:
            if not docker_client.image_exists(tag=image, base_url=host.engine):
                missing.append(host.name)
        except DockerUnavailable:
            raise ValidationError(
                f"The engine of {host.name} does not answer, so {image} cannot be checked there; try again later."
            ) from None
    if missing:
        raise ValidationError(
            f"No image {image} on the engine of {', '.join(missing)}: build or load it there first "
            "(manage.py images_build --production on that host), then start the rollout."
        )


def rollout_create(
    *,
    platform: str,
    image: str,
    batch_size: int,
    store_ids: list[int] | None = None,
    actor: User | None = None,
) -> Rollout:
    """Roll `image` out to the chosen stores of `platform` (`store_ids`), or to all of its stores (None), in
    batches of `batch_size`; the first batch is queued after the commit. Bad input raises ValidationError
    with the reason (an unknown platform, an empty or foreign selection, an image the engines lack)."""
    image = (image or "").strip()
    if platform not in Platform.values:
        raise ValidationError(f"Unknown platform “{platform}”.")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValidationError(f"The batch size is a number from 1 to {MAX_BATCH_SIZE}.")
    if store_ids is None:
        stores = list(rollout_stores_for_platform(platform).select_related("host"))
        if not stores:
            raise ValidationError(f"No {Platform(platform).label} store is active or suspended: nothing to update.")
    else:
        if not store_ids:
            raise ValidationError(f"Choose the stores to update, or all stores of {Platform(platform).label}.")
        stores = list(Store.objects.filter(pk__in=store_ids).select_related("host").order_by("pk"))
        foreign = [store.domain for store in stores if store.platform != platform]
        if foreign:
            raise ValidationError(f"Not {Platform(platform).label} stores: {', '.join(foreign)}.")
        unknown = sorted(set(store_ids) - {store.pk for store in stores})
        if unknown:
            raise ValidationError(f"No store with the id {', '.join(map(str, unknown))}.")
    hosts = {store.host_id: store.host for store in stores if store.host_id}
    rollout_image_check(image=image, hosts=list(hosts.values()))  # the engines answer outside any transaction
    return _rollout_record(platform=platform, image=image, batch_size=batch_size, stores=stores, actor=actor)


@transaction.atomic
def _rollout_record(*, platform: str, image: str, batch_size: int, stores: list[Store], actor) -> Rollout:
    rollout = Rollout.objects.create(platform=platform, image=image, batch_size=batch_size, created_by=actor)
    RolloutStore.objects.bulk_create(
        RolloutStore(rollout=rollout, store=store, position=position) for position, store in enumerate(stores, 1)
    )
    UpdateEvent.objects.create(
        rollout=rollout, new_status=rollout.status, actor=actor, note=f"{len(stores)} stores, batches of {batch_size}"
    )
    transaction.on_commit(lambda: rollout_advance(rollout_id=rollout.pk), robust=True)
    return rollout


# --- Moving on --------------------------------------------------------------------------------------------


def rollout_advance(*, rollout_id: int) -> Rollout:
    """Queue the next batch of a running rollout once no update of it is under way; skip (with the reason)
    each store of it that is busy, not active or already on the image, and move on to the next batch when a
    whole batch was skipped. With no store left waiting, the rollout is completed."""
    while True:
        with transaction.atomic():
            rollout = Rollout.objects.select_for_update().get(pk=rollout_id)
            if rollout.status != R.RUNNING or rollout.targets.filter(status=T.UPDATING).exists():
                return rollout
            batch = list(
                rollout.targets.filter(status=T.PENDING)
                .select_related("store")
                .order_by("position")[: rollout.batch_size]
            )
            if not batch:
                return rollout_transition(rollout.pk, R.COMPLETED, note="every chosen store had its turn")
            started = [_target_start(rollout, target) for target in batch]  # every store of the batch
            if any(started):
                return Rollout.objects.get(pk=rollout_id)
        # Every store of that batch was skipped: the next batch now.


def _target_start(rollout: Rollout, target: RolloutStore) -> bool:
    """Queue the store's update; False (the store is skipped, with the reason) when it cannot start."""
    store = target.store
    try:
        update = store_update_request(store_id=store.pk, image=rollout.image, actor=rollout.created_by)
    except (JobConflict, AlreadyOnImage) as exc:
        reason = str(exc)
    except InvalidTransition:
        status = store.get_status_display().lower()
        reason = f"{store.domain} was {status} when its turn came; only a live store is updated"
    else:
        _target_transition(target.pk, T.UPDATING, note=f"job #{update.job_id}", update=update)
        return True
    _target_transition(target.pk, T.SKIPPED, note=reason, reason=reason)
    return False


def rollout_update_ended(*, update_id: int) -> None:
    """An update ended (called by its kind's hooks, in the engine's transaction): record the store's outcome;
    a failure pauses the rollout (no new batch; staff resume or cancel it). After the commit, the rollout
    moves on if its batch is over."""
    target = RolloutStore.objects.filter(update_id=update_id).select_related("store").first()
    if target is None:
        return  # an update outside any rollout
    update = StoreUpdate.objects.get(pk=update_id)
    outcome = {UpdateStatus.UPDATED: T.UPDATED, UpdateStatus.ROLLED_BACK: T.ROLLED_BACK}.get(update.status, T.FAILED)
    _target_transition(target.pk, outcome, note=update.error[:2000], reason=update.error.split("\n\n")[0][:2000])
    if outcome != T.UPDATED:
        rollout = Rollout.objects.select_for_update().get(pk=target.rollout_id)
        if rollout.status == R.RUNNING:
            first_line = update.error.splitlines()[0] if update.error else "its update failed"
            rollout_transition(
                rollout.pk, R.PAUSED, note=f"paused: the update of {target.store.domain} failed: {first_line}"
            )
    rollout_id = target.rollout_id
    transaction.on_commit(lambda: rollout_advance(rollout_id=rollout_id), robust=True)


def rollout_update_put_back(*, update_id: int) -> None:
    """A failed update of this rollout was put back later (an undo job after its worker stopped): its store
    reads rolled back, like one put back at once. The rollout stays paused: staff resume or cancel it."""
    target = RolloutStore.objects.filter(update_id=update_id, status=T.FAILED).first()
    if target is not None:
        _target_transition(target.pk, T.ROLLED_BACK, note="put back by an undo job after its worker stopped")


def rollouts_advance() -> list[int]:
    """Move every running rollout on (every minute): one whose advance was lost after its last update ended
    goes on within a minute. Harmless for the others: a batch under way is left alone."""
    advanced = []
    for rollout_id in Rollout.objects.filter(status=R.RUNNING).values_list("pk", flat=True):
        rollout_advance(rollout_id=rollout_id)
        advanced.append(rollout_id)
    return advanced


# --- Staff ------------------------------------------------------------------------------------------------


def rollout_resume(*, rollout_id: int, actor: User | None = None) -> Rollout:
    """A paused rollout goes on with the stores still waiting (the one that failed stays put back)."""
    with transaction.atomic():
        rollout = rollout_transition(rollout_id, R.RUNNING, actor=actor, note="resumed")
        transaction.on_commit(lambda: rollout_advance(rollout_id=rollout_id), robust=True)
    return rollout


@transaction.atomic
def rollout_cancel(*, rollout_id: int, actor: User | None = None) -> Rollout:
    """No store still waiting is updated; updates under way finish (and are recorded)."""
    rollout = rollout_transition(rollout_id, R.CANCELLED, actor=actor, note=f"cancelled by {actor or 'the platform'}")
    for target_id in rollout.targets.filter(status=T.PENDING).values_list("pk", flat=True):
        _target_transition(target_id, T.CANCELLED, note="the rollout was cancelled", reason="the rollout was cancelled")
    return rollout
