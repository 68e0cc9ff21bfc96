"""The warm pool: stacks built ahead of any order, so a paid store goes live by claiming one instead of
building its own (provisioning/README.md, "The warm pool").

A pool stack is a store row in status pooled (no customer, no names, a placeholder domain) with its
PoolStack. Its job of kind `pool_fill` (pool_steps.py, on the `pool` queue, which no paying customer's job
waits behind) builds it: database initialised, application installed with a placeholder identity,
containers running inside the limits of its size class, counted against its host like any store. The
provision job's allocate step claims a ready one (`pool_claim`); its later steps make it the store's own.
`pool_refill` (every minute) builds and removes stacks until every active host holds the target of each
size class, all on the images of the day."""

import logging
import secrets
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning import docker_client
from provisioning.exceptions import DockerUnavailable, JobConflict
from provisioning.models import PoolStack, PoolTarget, ProvisioningJob, StoreImage
from provisioning.selectors import orders_being_set_up
from provisioning.services import job_enqueue
from provisioning.stacks import stack_for, stack_reservation
from shophosting.core.transactions import atomic_retrying_deadlocks
from stores.models import Host, Store
from stores.selectors import host_reservation
from stores.services import store_pool_hand_over, store_pooled_create

logger = logging.getLogger(__name__)
S = Store.Status
State = PoolStack.State
POOL_FILL = "pool_fill"
POOL_REMOVE = "pool_remove"


def _plan_model():
    # Store.plan points up at billing's catalogue (stores/README.md, "Layers"): the pool reaches a plan of its
    # size class through that relation, never by importing billing.
    return Store._meta.get_field("plan").related_model


def images_current(stack: PoolStack, engine_ids: dict[str, str]) -> bool:
    """Whether the pool stack runs the settings' images of today: built from the same references (`images`,
    role -> reference), and from the same image ids (`image_ids`, recorded when it was built) as those
    references name on its host's engine now (`engine_ids`, role -> id): a rebuilt image keeps its tag
    (`:local`) but gets a new id. A stack with no recorded ids is judged by its references alone."""
    wanted = settings.STORE_IMAGES.get(stack.platform, {})
    if not stack.images or any(wanted.get(role) != image for role, image in stack.images.items()):
        return False
    return all(engine_ids.get(role) == image_id for role, image_id in stack.image_ids.items())


def engine_image_ids(host: Host, platform: str) -> dict[str, str] | None:
    """role -> id of the image the settings name for it, on the host's engine now (missing roles left out);
    None when the engine does not answer."""
    ids = {}
    try:
        for role, image in settings.STORE_IMAGES.get(platform, {}).items():
            image_id = docker_client.image_id(tag=image, base_url=host.engine)
            if image_id:
                ids[role] = image_id
    except DockerUnavailable as exc:
        logger.warning("pool: images on host %s unknown: %s", host, exc)
        return None
    return ids


def platform_poolable(platform: str) -> bool:
    return stack_for(Store(platform=platform)).poolable


# --- claim ---------------------------------------------------------------------------------------------------


def pool_claim(*, store_id: int) -> PoolStack | None:
    """Give the paid store a ready pool stack of its platform and size class on an active host, running
    today's images; None when there is none (the store is then built from scratch).

    Two claims at once never take one stack: the candidates are locked with SKIP LOCKED, so a second order
    passes over a stack another holds and takes the next (or none). A stale stack (old images) is left
    for the refill to replace."""
    store = Store.objects.select_related("plan").get(pk=store_id)
    if store.host_id or store.staging_of_id or not platform_poolable(store.platform):
        return None
    # Hosts that take new stores: accepting them, and not draining (a claimed stack becomes a new store there).
    active_hosts = list(Host.objects.filter(active=True, status=Host.Status.READY))
    # The ids today's images have on each host that holds a ready stack of the class, asked before any row is
    # locked (no transaction is held across an engine call).
    holding = set(
        PoolStack.objects.filter(
            state=State.READY, platform=store.platform, memory_mb=store.plan.memory_mb, cpus=store.plan.cpu_limit
        ).values_list("host_id", flat=True)
    )
    engine_ids = {host.pk: engine_image_ids(host, store.platform) for host in active_hosts if host.pk in holding}
    engine_ids = {host_id: ids for host_id, ids in engine_ids.items() if ids is not None}  # answering engines
    if not engine_ids:
        return None

    def take() -> PoolStack | None:
        # One row at a time (LIMIT 1, in the class index's own order, so nothing is sorted and no other row
        # is read and locked): a concurrent claim skips only the row this one holds. No join either: MariaDB
        # would lock the joined rows (hosts) too.
        candidates = PoolStack.objects.select_for_update(skip_locked=True).filter(
            state=State.READY,
            platform=store.platform,
            memory_mb=store.plan.memory_mb,
            cpus=store.plan.cpu_limit,
            host_id__in=list(engine_ids),
        )
        chosen, passed = None, []
        for _ in range(10):
            stack = candidates.exclude(pk__in=passed).order_by("pk").first()
            if stack is None or images_current(stack, engine_ids[stack.host_id]):
                chosen = stack
                break
            passed.append(stack.pk)  # on old images (another reference, or a rebuilt one): the refill replaces it
        if chosen is None:
            return None
        chosen.state = State.CLAIMED
        chosen.claimed_by_id = store.pk
        chosen.claimed_at = timezone.now()
        chosen.save(update_fields=["state", "claimed_by", "claimed_at"])
        store_pool_hand_over(pool_store_id=chosen.store_id, store_id=store.pk)
        # The store runs the images the stack was built from (the same as today's: checked above).
        for role, image in chosen.images.items():
            StoreImage.objects.update_or_create(store_id=store.pk, role=role, defaults={"image": image})
        return chosen

    # Two claims on one host can deadlock in the (host, port) index while each moves its stack's port to its
    # store; InnoDB rolls one back, and it is simply run again.
    return atomic_retrying_deadlocks(take)


def pool_stack_claimed_by(store: Store) -> PoolStack | None:
    """The pool stack the store claimed, if its stack came from the pool."""
    if not store.stack_key:
        return None
    return PoolStack.objects.select_related("store").filter(claimed_by=store).first()


# --- the pool stack's own life (hooks of the pool kinds) ----------------------------------------------------


def _state_set(*, store_id: int, to: str, allowed_from: tuple[str, ...], **fields) -> None:
    stack = PoolStack.objects.select_for_update().filter(store_id=store_id).first()
    if stack is None or stack.state not in allowed_from:
        return
    stack.state = to
    for name, value in fields.items():
        setattr(stack, name, value)
    stack.save(update_fields=["state", *fields])


def _job_store_id(job_id: int) -> int:
    return ProvisioningJob.objects.values_list("store_id", flat=True).get(pk=job_id)


def pool_fill_orders_ahead(job_id: int) -> int:
    """Orders a pool build gives way to: those being set up on its stack's host (the build's store is placed
    only by its own first step) or not placed yet."""
    host_id = PoolStack.objects.filter(store_id=_job_store_id(job_id)).values_list("host_id", flat=True).first()
    return orders_being_set_up(host_id=host_id)


def pool_fill_succeeded(job_id: int) -> None:
    _state_set(store_id=_job_store_id(job_id), to=State.READY, allowed_from=(State.BUILDING,), ready_at=timezone.now())


def pool_fill_failed(job_id: int, summary: str) -> None:
    _state_set(store_id=_job_store_id(job_id), to=State.FAILED, allowed_from=(State.BUILDING,), note=summary[:300])


def pool_remove_succeeded(job_id: int) -> None:
    _state_set(store_id=_job_store_id(job_id), to=State.REMOVED, allowed_from=(State.REMOVING,))


def pool_stack_placeholders(*, store_id: int) -> dict[str, str]:
    """The pool stack's credentials: random like a store's, and an admin that names no one. Each is
    replaced when a store claims the stack."""
    store = Store.objects.get(pk=store_id)
    return {
        "db_user": stack_for(store).database_user,
        "db_password": secrets.token_urlsafe(24),
        "db_root_password": secrets.token_urlsafe(24),
        "admin_user": "pooladmin",
        "admin_email": f"pool@{store.domain}",
        "admin_password": secrets.token_urlsafe(16) + "7q",
    }


def pool_stack_images_record(*, store_id: int, images: dict[str, str], image_ids: dict[str, str]) -> None:
    PoolStack.objects.filter(store_id=store_id).update(images=images, image_ids=image_ids)


# --- refill --------------------------------------------------------------------------------------------------


def _stack_create(*, target: PoolTarget, plan, host: Host) -> PoolStack:
    with transaction.atomic():
        store = store_pooled_create(plan=plan, key=f"pool-{secrets.token_hex(4)}")
        stack = PoolStack.objects.create(
            store=store, platform=target.platform, memory_mb=target.memory_mb, cpus=target.cpus, host=host
        )
        job_enqueue(store_id=store.pk, kind=POOL_FILL)
    return stack


def pool_stack_remove(*, stack_id: int, reason: str) -> bool:
    """Tear the stack down (job pool_remove on the pool queue); False when it is busy (building) or gone."""
    with transaction.atomic():
        stack = PoolStack.objects.select_for_update().get(pk=stack_id)
        if stack.state not in (State.READY, State.FAILED):
            return False
        try:
            job_enqueue(store_id=stack.store_id, kind=POOL_REMOVE)
        except JobConflict:
            return False
        stack.state = State.REMOVING
        stack.note = reason[:300]
        stack.save(update_fields=["state", "note"])
    logger.info("pool stack %s removed: %s", stack.store_id, reason)
    return True


def _fits(host: Host, plan) -> bool:
    memory_mb, cpus = stack_reservation(Store(plan=plan, platform=plan.platform, domain="pool.invalid"))
    used_memory, used_cpus = host_reservation(host=host)
    # Stacks asked for but not placed yet (their job has not run) count too, or a busy host gets more
    # than it can hold, whose builds then fail.
    for waiting in Store.objects.filter(pool_stack__host=host, pool_stack__state=State.BUILDING, host=None):
        waiting_memory, waiting_cpus = stack_reservation(waiting)
        used_memory, used_cpus = used_memory + waiting_memory, used_cpus + waiting_cpus
    return used_memory + memory_mb <= host.memory_capacity_mb and used_cpus + cpus <= host.cpu_capacity


def pool_refill() -> dict[str, int]:
    """Bring every active host to each target's number of ready (or building) stacks of today's images:
    build what is missing, remove the surplus (a lowered target), stacks on old images, failed ones, and
    every stack on an inactive or draining host or of a class no longer targeted. Returns counts of what it started."""
    started = {"built": 0, "removed": 0}
    # A draining host is being emptied: its stacks go like those of a host that takes no new stores.
    hosts = list(Host.objects.filter(active=True, status=Host.Status.READY).order_by("pk"))
    wanted: dict[tuple[str, int, Decimal, int], int] = {}
    plans = {}
    for target in PoolTarget.objects.all():
        if not target.ready_target or not platform_poolable(target.platform):
            continue
        plan = (
            _plan_model()
            .objects.filter(platform=target.platform, memory_mb=target.memory_mb, cpu_limit=target.cpus)
            .order_by("pk")
            .first()
        )
        if plan is None:
            logger.warning("pool target %s: no plan has this size class", target)
            continue
        plans[target.pk] = plan
        for host in hosts:
            wanted[(target.platform, target.memory_mb, target.cpus, host.pk)] = target.ready_target
    live = PoolStack.objects.filter(state__in=PoolStack.LIVE).select_related("host").order_by("created_at", "pk")
    known_ids: dict[tuple[int, str], dict[str, str] | None] = {}

    def stale(stack: PoolStack) -> bool:
        """On old images; a host whose engine does not answer now judges nothing (its stacks stay)."""
        key = (stack.host_id, stack.platform)
        if key not in known_ids:
            known_ids[key] = engine_image_ids(stack.host, stack.platform)
        return known_ids[key] is not None and not images_current(stack, known_ids[key])

    kept: dict[tuple, list[PoolStack]] = {}
    for stack in live:
        key = (stack.platform, stack.memory_mb, stack.cpus, stack.host_id)
        reason = None
        if stack.state == State.FAILED:
            reason = f"its build failed: {stack.note}"
        elif key not in wanted:
            reason = "its host takes no new stores (inactive or draining) or its size class has no target"
        elif stack.images and stale(stack):
            reason = "built from images that are no longer the settings' (another reference, or rebuilt)"
        if reason:
            started["removed"] += pool_stack_remove(stack_id=stack.pk, reason=reason)
            continue
        kept.setdefault(key, []).append(stack)
    for target in PoolTarget.objects.filter(pk__in=plans):
        for host in hosts:
            key = (target.platform, target.memory_mb, target.cpus, host.pk)
            have = kept.get(key, [])
            # Surplus: the ready ones go, newest first; a stack still building is removed by a later run.
            for stack in sorted((s for s in have if s.state == State.READY), key=lambda s: s.pk, reverse=True)[
                : max(0, len(have) - target.ready_target)
            ]:
                started["removed"] += pool_stack_remove(stack_id=stack.pk, reason="the target was lowered")
            for _ in range(target.ready_target - len(have)):
                if not _fits(host, plans[target.pk]):
                    logger.info("pool: host %s has no room for another %s stack", host, target)
                    break
                _stack_create(target=target, plan=plans[target.pk], host=host)
                started["built"] += 1
    return started


# --- reading ------------------------------------------------------------------------------------------------


def pool_counts(target: PoolTarget) -> dict[str, int]:
    """Ready and building stacks of the target's class, over every host."""
    rows = PoolStack.objects.filter(
        platform=target.platform, memory_mb=target.memory_mb, cpus=target.cpus, state__in=(State.READY, State.BUILDING)
    ).values_list("state", flat=True)
    rows = list(rows)
    return {"ready": rows.count(State.READY), "building": rows.count(State.BUILDING)}
