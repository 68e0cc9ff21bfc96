"""Moving a store to another host, and moving every store off a host in maintenance.

    StoreMove:       queued → running → switched → moved
                     queued | running → failed                 before the switch: the store stayed where it was
                     switched → failed_after_switch            it runs on the target; the old stack is left
                     (new) failed                              an evacuation could not start it (the reason)
    HostEvacuation:  running → completed | cancelled

A move is a job of kind `move` (steps: provisioning/move_steps.py) with its StoreMove record. The target is
reserved when the move is asked for (stores.moves: a port and the stack's room, held until the move ends),
so a bad request is refused at once, in words, with nothing changed. The store keeps its status throughout:
an active one answers but in the switch window; a suspended one moves stopped (move_steps.py).

A host put into maintenance (`host_maintenance_start`) gets no new store and has its stores moved off one at
a time: each move's end (the kind's hooks, in the engine's transaction) queues the next after that commit,
and `evacuations_advance` (every minute) picks up an evacuation whose next move was not queued. A store that
cannot move or whose move fails stays where it was and is counted failed; the evacuation goes on with the
next store (one store's trouble does not hold the host's other stores back).
"""

import logging

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from provisioning import move_steps
from provisioning.exceptions import JobConflict
from provisioning.kinds import JobKind
from provisioning.models import JobStep, ProvisioningJob
from provisioning.move_models import HostEvacuation, MoveEvent, StoreMove
from provisioning.services import job_enqueue, job_undo_done_by
from shophosting.core.transitions import transition
from stores.exceptions import InvalidTransition, NoCapacity, StoreBusy
from stores.models import Host, Store
from stores.moves import store_move_reserve
from stores.services import host_transition, store_event_record

logger = logging.getLogger(__name__)
KIND = ProvisioningJob.Kind.MOVE
M = StoreMove.Status
E = HostEvacuation.Status
MOVE_ALLOWED_FROM: dict[str, set[str]] = {
    M.RUNNING: {M.QUEUED},
    M.SWITCHED: {M.RUNNING},
    M.MOVED: {M.SWITCHED},
    M.FAILED: {M.QUEUED, M.RUNNING},
    M.FAILED_AFTER_SWITCH: {M.SWITCHED},
}
EVACUATION_ALLOWED_FROM: dict[str, set[str]] = {E.COMPLETED: {E.RUNNING}, E.CANCELLED: {E.RUNNING}}


def _move_transition(move_id: int, to: str, *, note: str = "", actor: User | None = None, **fields) -> StoreMove:
    return transition(
        StoreMove,
        move_id,
        to,
        allowed_from=MOVE_ALLOWED_FROM,
        event_model=MoveEvent,
        event_link="store_move",
        actor=actor,
        note=note[:5000],
        **fields,
    )


def _evacuation_transition(evacuation_id: int, to: str, *, note: str = "", actor: User | None = None):
    return transition(
        HostEvacuation,
        evacuation_id,
        to,
        allowed_from=EVACUATION_ALLOWED_FROM,
        event_model=MoveEvent,
        event_link="evacuation",
        actor=actor,
        note=note[:5000],
        status_note=note[:5000],
    )


# --- Asking for a move ----------------------------------------------------------------------------------------


class MoveError(Exception):
    """A move that cannot start: the reason, for staff, as is."""


@transaction.atomic
def store_move_request(
    *,
    store_id: int,
    host_id: int | None = None,
    actor: User | None = None,
    evacuation: HostEvacuation | None = None,
) -> StoreMove:
    """Move the store to `host_id`, or to the host the placement policy picks among the others. Refuses with
    MoveError and changes nothing: a store that is neither active nor suspended (nothing to copy, or a
    deletion under way), busy with another operation, a staging copy or one with a staging copy, the store's own
    host, a host not taking new stores (draining, in maintenance, closed) or without room."""
    try:
        job = job_enqueue(store_id=store_id, kind=KIND, actor=actor)
    except JobConflict as exc:
        raise MoveError(str(exc)) from None
    except InvalidTransition:
        store = Store.objects.get(pk=store_id)
        raise MoveError(
            f"{store.domain} is {store.get_status_display().lower()}: only an active or suspended store can be moved."
        ) from None
    try:
        store = store_move_reserve(store_id=store_id, host_id=host_id)
    except (InvalidTransition, NoCapacity) as exc:
        raise MoveError(str(exc)) from None
    move = StoreMove.objects.create(
        store=store,
        job=job,
        evacuation=evacuation,
        source_host=store.host,
        source_port=store.port,
        target_host=store.move_host,
        target_port=store.move_port,
        created_by=actor,
    )
    MoveEvent.objects.create(
        store_move=move,
        new_status=move.status,
        actor=actor,
        note=f"{store.host.name}:{store.port} → {store.move_host.name}:{store.move_port}",
    )
    return move


def move_refusal_record(*, store: Store, evacuation: HostEvacuation, reason: str) -> StoreMove:
    """A move an evacuation could not start: recorded failed, with the reason, so its progress counts it."""
    move = StoreMove.objects.create(
        store=store,
        evacuation=evacuation,
        source_host_id=store.host_id,
        source_port=store.port or 0,
        status=M.FAILED,
        error=reason,
        finished_at=timezone.now(),
    )
    MoveEvent.objects.create(store_move=move, new_status=M.FAILED, note=f"not started: {reason}"[:5000])
    return move


def move_target_hosts(store: Store) -> list[tuple[Host, int]]:
    """The hosts the store could move to, with their free memory (MB): those that take new stores, other
    than its own, with room for its stack and a free port (read without locks: the move checks again)."""
    from stores.moves import host_room

    hosts = Host.objects.filter(active=True, status=Host.Status.READY).exclude(pk=store.host_id).order_by("name")
    return [(host, free_mb) for host in hosts for free_mb in [host_room(host, store)] if free_mb is not None]


# --- What the steps record -------------------------------------------------------------------------------------


def move_copied(*, move_id: int, database_bytes: int, files_bytes: int, seconds: float) -> None:
    StoreMove.objects.filter(pk=move_id).update(
        database_bytes=database_bytes, files_bytes=files_bytes, copy_seconds=seconds
    )


def move_downtime_start(*, move_id: int) -> None:
    StoreMove.objects.filter(pk=move_id).update(downtime_started_at=timezone.now(), downtime_ended_at=None)


def move_downtime_end(*, move_id: int, at) -> StoreMove:
    move = StoreMove.objects.get(pk=move_id)
    seconds = (at - move.downtime_started_at).total_seconds() if move.downtime_started_at else None
    StoreMove.objects.filter(pk=move_id).update(downtime_ended_at=at, downtime_seconds=seconds)
    return StoreMove.objects.select_related("source_host", "target_host").get(pk=move_id)


@transaction.atomic
def move_switched(*, move_id: int) -> StoreMove:
    """nginx routes the store to the target now: the store's place becomes the target's (stores.moves), the
    switch window closes, and the move is switched: from here on a failure leaves the store on the target."""
    from stores.moves import store_move_switch

    move = StoreMove.objects.select_for_update().get(pk=move_id)
    store_move_switch(store_id=move.store_id, host_id=move.target_host_id, port=move.target_port)
    move_downtime_end(move_id=move.pk, at=timezone.now())
    return _move_transition(move.pk, M.SWITCHED, note="nginx routes the store to the target")


# --- The kind's hooks (in the engine's transaction) -----------------------------------------------------------


def _on_start(job_id: int) -> None:
    move = StoreMove.objects.get(job_id=job_id)
    if move.status == M.QUEUED:
        _move_transition(move.pk, M.RUNNING, note=f"job #{job_id} started")


def _on_success(job_id: int) -> None:
    move = StoreMove.objects.select_related("source_host", "target_host").get(job_id=job_id)
    move = _move_transition(move.pk, M.MOVED, note="the old stack is removed", finished_at=timezone.now())
    store_event_record(
        store_id=move.store_id,
        note=(
            f"moved from {move.source_host.name} to {move.target_host.name} (job #{job_id}); "
            + (
                f"unavailable for {move.downtime_seconds:.1f} s"
                if move.downtime_started_at
                else "no window (suspended: nothing ran)"
            )
        ),
    )
    _evacuation_next(move)


def _on_failure(job_id: int, summary: str) -> None:
    move = StoreMove.objects.get(job_id=job_id)
    job = ProvisioningJob.objects.get(pk=job_id)
    to = M.FAILED_AFTER_SWITCH if move.status == M.SWITCHED else M.FAILED
    _move_transition(move.pk, to, note=summary, error=job.error or summary, finished_at=timezone.now())
    if to == M.FAILED_AFTER_SWITCH:
        where = "it runs on the target; its old stack is not removed yet"
    elif job.reaped_at and job_undo_done_by(job):
        where = "its worker stopped after putting it back where it was"
    elif job.reaped_at and _undo_after_reap(job_id):  # the engine queues an undo job (provisioning/undo.py)
        where = "its worker stopped, so it is being put back where it was"
    elif job.reaped_at:
        where = "its worker stopped while switching: staff check where it runs (the job's log)"
    else:
        where = "it stayed where it was"
    store_event_record(store_id=move.store_id, note=f"move (job #{job_id}) failed, {where}: {summary}")
    _evacuation_next(move)


def _retry(job_id: int, actor: User | None) -> ProvisioningJob:
    """A failed move is asked for again: to the same host before the switch (its place is released by then,
    unless the job was reaped, when it is taken up again), or, after it, only the old stack's removal."""
    move = StoreMove.objects.select_related("store").get(job_id=job_id)
    if move.status == M.FAILED_AFTER_SWITCH:
        with transaction.atomic():
            skip = {step.name: "done before the switch" for step in move_steps.MOVE_STEPS[:6]}
            job = job_enqueue(store_id=move.store_id, kind=KIND, actor=actor, skip=skip)
            retried = StoreMove.objects.create(
                store=move.store,
                job=job,
                evacuation=move.evacuation,
                source_host=move.source_host,
                source_port=move.source_port,
                target_host=move.target_host,
                target_port=move.target_port,
                status=M.QUEUED,
                downtime_started_at=move.downtime_started_at,
                downtime_ended_at=move.downtime_ended_at,
                downtime_seconds=move.downtime_seconds,
                created_by=actor,
            )
            # Its steps before the switch are skipped: it starts switched.
            StoreMove.objects.filter(pk=retried.pk).update(status=M.SWITCHED)
            MoveEvent.objects.create(
                store_move=retried, new_status=M.SWITCHED, actor=actor, note="retry of the removal"
            )
        return job
    with transaction.atomic():
        Store.objects.filter(pk=move.store_id, move_host=move.target_host, host=move.source_host).update(
            move_host=None, move_port=None
        )  # a reaped move's place: taken up again just below
        try:
            return store_move_request(store_id=move.store_id, host_id=move.target_host_id, actor=actor).job
        except MoveError as exc:
            raise JobConflict(str(exc)) from None


def _undo_after_reap(job_id: int) -> bool:
    """A move reaped before its switch left the target's copy, its reserved place and maybe a paused store:
    its put-back is run by an undo job. Not once the switch began: nginx may route to the target already, and
    removing the target would lose what the store took there; after it, only the old stack's removal is left
    (its retry)."""
    switching = JobStep.objects.filter(job_id=job_id, name="switch").exclude(
        status__in=(JobStep.Status.PENDING, JobStep.Status.SKIPPED)
    )
    return StoreMove.objects.filter(job_id=job_id, status=M.FAILED).exists() and not switching.exists()


def _on_undone(job_id: int) -> None:
    move = StoreMove.objects.select_related("source_host").get(job_id=job_id)
    MoveEvent.objects.create(
        store_move=move, old_status=move.status, new_status=move.status, note="put back after its worker stopped"
    )
    store_event_record(
        store_id=move.store_id,
        note=f"the move (job #{job_id}) was put back: the store is on {move.source_host.name} again",
    )


MOVE_KIND = JobKind(
    name=KIND,
    title="Move to another host",
    steps=move_steps.MOVE_STEPS,
    undo=move_steps.PUT_BACK,
    undo_after_reap=_undo_after_reap,
    on_undone=_on_undone,
    store_statuses=frozenset({Store.Status.ACTIVE, Store.Status.SUSPENDED}),
    timeout_seconds=lambda: 60 * 60,
    on_start=_on_start,
    on_success=_on_success,
    on_failure=_on_failure,
    retry=_retry,
)
KINDS = (MOVE_KIND,)


# --- Hosts in maintenance ----------------------------------------------------------------------------------


@transaction.atomic
def host_maintenance_start(*, host_id: int, actor: User | None = None) -> HostEvacuation:
    """The host takes no new store and its stores are moved off, one at a time, from after this commit."""
    host = host_transition(host_id=host_id, to=Host.Status.MAINTENANCE, actor=actor, note="its stores are moved off")
    evacuation = HostEvacuation.objects.filter(host=host, status=E.RUNNING).first()
    if evacuation is None:
        evacuation = HostEvacuation.objects.create(host=host, created_by=actor)
        MoveEvent.objects.create(evacuation=evacuation, new_status=E.RUNNING, actor=actor, note="started")
    evacuation_id = evacuation.pk
    transaction.on_commit(lambda: evacuation_advance(evacuation_id=evacuation_id), robust=True)
    return evacuation


def _evacuation_next(move: StoreMove) -> None:
    if move.evacuation_id:
        evacuation_id = move.evacuation_id
        transaction.on_commit(lambda: evacuation_advance(evacuation_id=evacuation_id), robust=True)


def evacuation_candidates(evacuation: HostEvacuation):
    """The host's stores still to be moved off: every store placed there (a staging copy goes nowhere on its
    own, pool stacks are the pool's to remove), but those this evacuation has tried already."""
    tried = StoreMove.objects.filter(evacuation=evacuation).values("store_id")
    return (
        Store.objects.filter(host_id=evacuation.host_id, staging_of__isnull=True)
        .exclude(status__in=(Store.Status.DELETED, Store.Status.DELETING, Store.Status.POOLED))
        .exclude(pk__in=tried)
        .order_by("pk")
    )


def evacuation_advance(*, evacuation_id: int) -> HostEvacuation:
    """Queue the next store's move once none of this evacuation's is under way. A store that cannot move
    is recorded failed with the reason, and the next one is tried; with none left, the evacuation is
    completed (the host stays in maintenance until staff make it ready). A host taken out of maintenance
    meanwhile cancels it (moves under way finish)."""
    while True:
        with transaction.atomic():
            evacuation = HostEvacuation.objects.select_for_update().select_related("host").get(pk=evacuation_id)
            if evacuation.status != E.RUNNING:
                return evacuation
            if evacuation.host.status != Host.Status.MAINTENANCE:
                return _evacuation_transition(
                    evacuation.pk, E.CANCELLED, note=f"the host is {evacuation.host.get_status_display().lower()}"
                )
            if evacuation.moves.filter(status__in=StoreMove.ACTIVE).exists():
                return evacuation
            store = evacuation_candidates(evacuation).first()
            if store is None:
                counts = evacuation_progress(evacuation)
                return _evacuation_transition(
                    evacuation.pk,
                    E.COMPLETED,
                    note=f"{counts['moved']} moved, {counts['failed']} failed (those stay on the host)",
                )
            try:
                with transaction.atomic():
                    store_move_request(store_id=store.pk, actor=evacuation.created_by, evacuation=evacuation)
                return evacuation
            except (MoveError, StoreBusy) as exc:
                move_refusal_record(store=store, evacuation=evacuation, reason=str(exc))
        # That store could not start: the next one now.


def evacuations_advance() -> list[int]:
    """Every minute: an evacuation whose next move was not queued (the worker died after a move's end) goes on."""
    advanced = []
    for evacuation_id in HostEvacuation.objects.filter(status=E.RUNNING).values_list("pk", flat=True):
        evacuation_advance(evacuation_id=evacuation_id)
        advanced.append(evacuation_id)
    return advanced


def evacuation_progress(evacuation: HostEvacuation) -> dict:
    """What staff read: stores moved, failed (they stay on the host) and remaining, and the one moving now."""
    moves = StoreMove.objects.filter(evacuation=evacuation)
    current = moves.filter(status__in=StoreMove.ACTIVE).select_related("store").first()
    return {
        "moved": moves.filter(status=M.MOVED).count(),
        "failed": moves.filter(status__in=(M.FAILED, M.FAILED_AFTER_SWITCH)).count(),
        "remaining": evacuation_candidates(evacuation).count(),
        "current": current.store if current else None,
    }
