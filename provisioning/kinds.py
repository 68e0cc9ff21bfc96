"""The registry of job kinds: what the engine (provisioning.services) runs, and how each kind's outcome reaches
the app that owns it.

Every operation on a store's containers or data is a job of some kind: provisioning's own (provision, suspend,
resume, ...) and those other apps register from their AppConfig.ready() (backups: backup, restore, verify).
A kind names its steps in order, the store statuses it starts from, what it does to the store's status, and
hooks the engine calls at fixed points. The engine imports no app above stores: an app's kind carries its
own reactions.

Adding a kind: write the step functions (idempotent where a retry may repeat them; no database transaction
held across Docker, nginx or restic calls), describe the kind with `JobKind`, and `register()` it in the app's
`ready()`. Enqueue with `provisioning.services.job_enqueue(store_id=, kind=, actor=)` inside a transaction
that also creates your domain record pointing at the job (the job runs only after that commit), and let
`on_start` / `on_success` / `on_failure` move the record's status, so the record and the job never disagree.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

Log = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    """One step of a kind's plan. `run(store, log)`; with `with_job=True`, `run(store, log, job_id=...)`, for
    steps that read the domain record linked to their job (a backup run, a restore run)."""

    name: str
    title: str  # what the customer and staff read: plain words, no internals
    run: Callable[..., None]
    with_job: bool = False


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str  # "Back up", "Restore": the job's kind as people read it
    steps: tuple[Step, ...]
    # The store statuses a job of this kind may start from; enqueueing refuses any other, and before each step
    # the store must still be in one of them (or in `store_status_on_start`).
    store_statuses: frozenset[str]
    queue: str = "provisioning"
    timeout_seconds: Callable[[], int] = lambda: 15 * 60
    store_status_on_start: str | None = None  # the store moves here when a worker claims the job
    store_status_on_success: str | None = None
    store_status_on_enqueue: str | None = None  # e.g. teardown: deleting as soon as it is asked for
    fails_store: bool = False  # a failure marks a store that is queued or provisioning failed
    retry_as: str | None = None  # a failed job of this kind is retried as that kind (provision → retry)
    # Background work (the warm pool's builds): (job_id) -> how many paying customers' stores being set up
    # where this job would run (provision or retry jobs queued or running on its host, or not placed yet). While
    # any are, the job goes back on its queue for ORDERS_FIRST_WAIT_SECONDS instead of starting (at most
    # ORDERS_FIRST_MAX_WAITS times), so it never takes the CPU those stores' jobs need.
    orders_ahead: Callable[[int], int] | None = None
    # Hooks. All but `after` run inside the engine's transaction that changes the job's status, so what they
    # write commits with it; they must not call Docker, nginx or restic.
    on_start: Callable[[int], None] | None = None  # (job_id) when a worker claims the job
    on_success: Callable[[int], None] | None = None  # (job_id)
    on_failure: Callable[[int, str], None] | None = None  # (job_id, summary) also when the reaper fails it
    # (job_id, succeeded) in the worker, after the job ended, outside any transaction: clean-up that needs
    # Docker or the disk (a staging directory, a store started again after a failed restore). Not called when
    # the job was reaped (another operation may own the store by then) nor when the worker died.
    after: Callable[[int, bool], None] | None = None
    # (job_id, actor) -> the new job, for kinds whose jobs carry a domain record (a backup run): a retry asks
    # the app for a new one. Without it, a failed job is retried as a new job of `retry_as` or its own kind.
    retry: Callable[..., object] | None = None
    # A step run only when a step of the plan failed: in the worker, outside any transaction, while the job
    # still holds the store (no other operation can start), before the job is marked failed. It puts back
    # what the failed job changed (an update: the old image and the data). Its row comes last in the job's
    # checklist; a job that succeeds marks it skipped. A job that was reaped (its worker is gone) of a kind that
    # opts in (`undo_after_reap`) has it run by an `undo` job the reaper queues (provisioning/undo.py), so it
    # must then work from another process, reading what the job got to from its steps and records.
    undo: Step | None = None
    # (job_id) -> whether a reaped job of this kind should have its undo step run by an `undo` job, asked after
    # on_failure: False where putting back could lose data or there is nothing left (a move reaped once it
    # began to switch). None: a reaped job's undo is left to staff, as it was before.
    undo_after_reap: Callable[[int], bool] | None = None
    # (job_id) of the reaped job, in the undo job's success transaction: the kind's record says it was put back.
    on_undone: Callable[[int], None] | None = None
    step_by_name: dict[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        steps = (*self.steps, self.undo) if self.undo else self.steps
        object.__setattr__(self, "step_by_name", {step.name: step for step in steps})

    @property
    def all_steps(self) -> tuple[Step, ...]:
        """The plan's steps, then the undo step if the kind has one: every row a job of this kind gets."""
        return (*self.steps, self.undo) if self.undo else self.steps


_kinds: dict[str, JobKind] = {}


def register(kind: JobKind) -> None:
    """Called from an app's AppConfig.ready(). Kind names are global: registering a taken name by another
    definition is a programming error, found at start-up."""
    existing = _kinds.get(kind.name)
    if existing is not None and existing is not kind:
        raise ValueError(f"job kind {kind.name!r} is registered twice")
    _kinds[kind.name] = kind


def kind_get(name: str) -> JobKind:
    try:
        return _kinds[name]
    except KeyError:
        raise LookupError(f"no job kind {name!r} is registered (known: {', '.join(sorted(_kinds))})") from None


def kind_choices() -> list[tuple[str, str]]:
    """The `ProvisioningJob.kind` choices: every registered kind (a callable, so a new kind needs no migration)."""
    return [(kind.name, kind.title) for kind in _kinds.values()]
