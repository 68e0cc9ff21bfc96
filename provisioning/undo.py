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
with the reason and staff retry it once that worker has stopped. Kinds not opted in (staging push, import)
are left to staff after a reap, as before.
"""

from provisioning import liveness
from provisioning.exceptions import ProvisioningError
from provisioning.kinds import JobKind, Log, Step, kind_get
from provisioning.models import JobStep, ProvisioningJob
from stores.models import Store
from stores.services import store_event_record

KIND = ProvisioningJob.Kind.UNDO


def _stopped_job(job_id: int) -> ProvisioningJob:
    stopped = ProvisioningJob.objects.get(pk=job_id).undo_of
    if stopped is None:
        raise ProvisioningError(f"job #{job_id} names no job to put back (it was deleted)")
    return stopped


def step_put_back(store: Store, log: Log, *, job_id: int) -> None:
    stopped = _stopped_job(job_id)
    if liveness.job_holder_alive(job_id=stopped.pk):
        raise ProvisioningError(
            f"job #{stopped.pk}'s worker still holds it (it ran past its timeout): retry this once it has stopped"
        )
    stopped_kind = kind_get(stopped.kind)
    if not stopped_kind.undo_after_reap(stopped.pk):  # e.g. a worker reaped for its timeout that went on
        raise ProvisioningError(f"job #{stopped.pk} got past the point where putting back is safe: staff check it")
    undo = stopped_kind.undo
    where = (
        stopped.steps.filter(status=JobStep.Status.FAILED).values_list("title", flat=True).first() or "an unknown step"
    )
    log(f"job #{stopped.pk} ({stopped.get_kind_display()}) stopped at “{where}”: running its “{undo.title}”")
    if undo.with_job:
        undo.run(store, log, job_id=stopped.pk)
    else:
        undo.run(store, log)


def _on_success(job_id: int) -> None:
    stopped = _stopped_job(job_id)
    on_undone = kind_get(stopped.kind).on_undone
    if on_undone:
        on_undone(stopped.pk)
    store_event_record(
        store_id=stopped.store_id,
        note=f"job #{job_id} put back what job #{stopped.pk} ({stopped.kind}) changed; its worker had stopped",
    )


def _on_failure(job_id: int, summary: str) -> None:
    stopped = _stopped_job(job_id)
    store_event_record(
        store_id=stopped.store_id,
        note=f"job #{job_id} could not put back what job #{stopped.pk} ({stopped.kind}) changed: {summary}; "
        "retry it once the cause is fixed",
    )


def _retry(job_id: int, actor) -> ProvisioningJob:
    from provisioning.services import job_undo_enqueue

    return job_undo_enqueue(job_id=_stopped_job(job_id).pk, actor=actor)


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
