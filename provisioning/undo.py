"""The `undo` job kind: a reaped job's undo step, run by a job of its own.

Kinds with an undo step run it in their worker when a step fails. When the worker dies instead (killed, out
of memory, the machine restarted), the reaper fails the job and nobody is left to put back what it changed:
a store moving or updating would stay behind the maintenance page (a move's copy on the target and the
target's place held; an update half done). For kinds that opt in (`JobKind.undo_after_reap`: the move before
its switch began, the update before its route step began), the reaper queues an `undo` job in its own
transaction (provisioning.services._job_undo_after_reap). Its one step runs the reaped job's undo step
against the reaped job's records (its StoreMove, its StoreUpdate), which say what the job got to, so it works
from another process; on success the kind's `on_undone` records it (an update is rolled back, and the
merchant reads so).

    reaped job (failed) ──> undo job: queued → running → succeeded | failed (staff retry it)

A job reaped for its timeout whose worker still holds it (hung) is not put back beside it: the step fails
with the reason and staff retry it once that worker has stopped (refused if that worker finished its own
put-back meanwhile). On SQLite (the demo) there are no liveness locks: only timeouts reap there, and a hung
worker cannot be told from a dead one. Kinds not opted in (staging push, import)
are left to staff after a reap, as before.
"""

from provisioning import liveness
from provisioning.exceptions import ProvisioningError
from provisioning.kinds import JobKind, Log, Step, kind_get
from provisioning.models import JobStep, ProvisioningJob
from provisioning.services import job_undo_done_by, job_undo_enqueue
from stores.models import Store
from stores.services import store_event_record

KIND = ProvisioningJob.Kind.UNDO


def _reaped_job(undo_job_id: int) -> ProvisioningJob:
    """The job an undo job puts back (its `undo_of`)."""
    reaped = ProvisioningJob.objects.get(pk=undo_job_id).undo_of
    if reaped is None:
        raise ProvisioningError(f"job #{undo_job_id} names no job to put back (it was deleted)")
    return reaped


def step_put_back(store: Store, log: Log, *, job_id: int) -> None:
    reaped = _reaped_job(job_id)
    if liveness.job_holder_alive(job_id=reaped.pk):
        raise ProvisioningError(
            f"job #{reaped.pk}'s worker still holds it (it ran past its timeout): retry this once it has stopped"
        )
    reaped_kind = kind_get(reaped.kind)
    if not reaped_kind.undo_after_reap(reaped.pk):  # e.g. a worker reaped for its timeout that went on
        raise ProvisioningError(f"job #{reaped.pk} got past the point where putting back is safe: staff check it")
    done_by = job_undo_done_by(reaped)  # e.g. its worker, reaped for its timeout, finished its put-back
    if done_by:
        raise ProvisioningError(f"{done_by} put the store back after all; nothing more is done")
    undo = reaped_kind.undo
    where = (
        reaped.steps.filter(status=JobStep.Status.FAILED).values_list("title", flat=True).first() or "an unknown step"
    )
    log(f"job #{reaped.pk} ({reaped.get_kind_display()}) stopped at “{where}”: running its “{undo.title}”")
    if undo.with_job:
        undo.run(store, log, job_id=reaped.pk)
    else:
        undo.run(store, log)


def _on_success(job_id: int) -> None:
    reaped = _reaped_job(job_id)
    on_undone = kind_get(reaped.kind).on_undone
    if on_undone:
        on_undone(reaped.pk)
    store_event_record(
        store_id=reaped.store_id,
        note=f"job #{job_id} put back what job #{reaped.pk} ({reaped.kind}) changed; its worker had stopped",
    )


def _on_failure(job_id: int, summary: str) -> None:
    reaped = _reaped_job(job_id)
    store_event_record(
        store_id=reaped.store_id,
        note=f"job #{job_id} could not put back what job #{reaped.pk} ({reaped.kind}) changed: {summary}; "
        "retry it once the cause is fixed",
    )


def _retry(job_id: int, actor) -> ProvisioningJob:
    return job_undo_enqueue(job_id=_reaped_job(job_id).pk, actor=actor)


UNDO_KIND = JobKind(
    name=KIND,
    title="Put back what a stopped job changed",
    steps=(Step("put_back", "Put back what the stopped job changed", step_put_back, with_job=True),),
    # The kinds that put back after a reap: update (active stores) and move (active or suspended); the reaped
    # job left the store as it found it.
    store_statuses=frozenset({Store.Status.ACTIVE, Store.Status.SUSPENDED}),
    timeout_seconds=lambda: 30 * 60,  # job_undo_enqueue gives each the reaped job's own timeout
    on_success=_on_success,
    on_failure=_on_failure,
    retry=_retry,
)
KINDS = (UNDO_KIND,)
