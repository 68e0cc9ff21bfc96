"""The `undo` job kind: a reaped job's undo step, run by a job of its own.

A kind with an undo step (move, update) runs it in its worker when a step fails. When the worker dies instead
(killed, out of memory, the machine restarted), the reaper fails the job and nobody is left to put back what
it changed: a store moving would stay behind the maintenance page with its copy on the target, an update
would leave the store on the new image. The reaper therefore queues an `undo` job in its own transaction
(provisioning.services._job_undo_after_reap), whose one step runs the reaped job's undo step against the
reaped job's records (its StoreMove, its StoreUpdate). Undo steps read what the job got to from its steps
and records, so they are safe to run from another process.

    reaped job (failed) ──> undo job: queued → running → succeeded | failed (staff retry it)

A job reaped for its timeout while its worker still runs (hung) stops before its next step; a step it is
still in may finish beside the undo. That was already so for any operation started after a reap.
"""

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
    undo = kind_get(stopped.kind).undo
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
    store_event_record(
        store_id=stopped.store_id,
        note=f"job #{job_id} put back what job #{stopped.pk} ({stopped.kind}) changed; its worker had stopped",
        message=f"{stopped.get_kind_display()} was interrupted; we put your store back as it was.",
    )


def _retry(job_id: int, actor) -> ProvisioningJob:
    from provisioning.services import job_undo_enqueue

    return job_undo_enqueue(job_id=_stopped_job(job_id).pk, actor=actor)


UNDO_KIND = JobKind(
    name=KIND,
    title="Put back what a stopped job changed",
    steps=(Step("put_back", "Put back what the stopped job changed", step_put_back, with_job=True),),
    # The kinds with an undo step (move, update) run on active stores, which the reaped job left active.
    store_statuses=frozenset({Store.Status.ACTIVE}),
    timeout_seconds=lambda: 30 * 60,  # an update's put-back restores the pre-update backup
    on_success=_on_success,
    retry=_retry,
)
KINDS = (UNDO_KIND,)
