"""Provisioning jobs: enqueue under the store's lock, execute step by step, fail loudly, reap the stale."""

import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from accounts.models import User
from provisioning import acme_client, docker_client, host_slots, jobs, liveness, proxy
from provisioning.exceptions import JobConflict
from provisioning.kinds import JobKind, kind_get
from provisioning.models import JobLogLine, JobStep, ProvisioningJob
from provisioning.stacks import stack_for
from shophosting.core.queues import enqueue_recorded, rq_job_pending
from stores.exceptions import InvalidTransition, StoreBusy
from stores.models import Store, StoreName, StoreUsageSample
from stores.operations import store_busy_refusal, store_lock_for_operation
from stores.services import (
    store_credentials,
    store_disk_record,
    store_names_ensure,
    store_names_tls_result,
    store_transition,
)

logger = logging.getLogger(__name__)
Job = ProvisioningJob
S = Store.Status


def _store_may_run(kind: JobKind, store: Store) -> bool:
    return store.status in kind.store_statuses or store.status == kind.store_status_on_start


def job_preflight(*, store: Store, kind: str) -> None:
    """Whether a job of `kind` could start on `store` now, read without locks, for callers that must know
    before they do something irreversible elsewhere (billing cancels in Stripe before a staff delete).
    Raises InvalidTransition (a status the kind does not start from) or JobConflict (another operation on
    the store is queued or running), each with worded reasons; `job_enqueue` checks both again under the
    store's row lock."""
    if store.status not in kind_get(kind).store_statuses:
        raise InvalidTransition(
            f"{store.domain} is {store.get_status_display().lower()}; a {kind} job cannot start until that is done"
        )
    refusal = store_busy_refusal(store_id=store.pk)  # the check under the lock gives the same sentence
    if refusal:
        raise JobConflict(f"{store.domain}: {refusal}")


@transaction.atomic
def job_enqueue(
    *, store_id: int, kind: str, actor: User | None = None, skip: dict[str, str] | None = None
) -> ProvisioningJob:
    """Create a job of a registered kind with its steps, and put it on the kind's queue after commit.

    At most one active operation per store, whatever its kind: checked by stores.operations while the store
    row is locked (MariaDB has no partial unique index to do it). `skip` names steps of the plan that this
    job does not need (step name -> why), recorded as skipped from the start (a database-only restore skips
    the files). Callers that keep a domain record of the job (a BackupRun) create it in their transaction
    around this call, so the worker finds it."""
    job_kind = kind_get(kind)
    unknown = set(skip or ()) - set(job_kind.step_by_name)
    if unknown:
        raise ValueError(f"a {kind} job has no step {', '.join(sorted(unknown))}")
    try:
        store = store_lock_for_operation(store_id=store_id)
    except StoreBusy as exc:
        raise JobConflict(str(exc)) from None
    if store.status not in job_kind.store_statuses:
        allowed = ", ".join(sorted(job_kind.store_statuses))
        raise InvalidTransition(f"store {store.pk} is {store.status}; a {kind} job needs it to be {allowed}")
    to = job_kind.store_status_on_enqueue
    if to and store.status != to:
        store = store_transition(store_id=store.pk, to=to, actor=actor, note=f"{kind} requested")
    job = Job.objects.create(store=store, kind=kind, created_by=actor, timeout_seconds=job_kind.timeout_seconds())
    skip = skip or {}
    JobStep.objects.bulk_create(
        JobStep(
            job=job,
            name=step.name,
            title=step.title,
            order=order,
            status=JobStep.Status.SKIPPED if step.name in skip else JobStep.Status.PENDING,
            output=skip.get(step.name, ""),
        )
        for order, step in enumerate(job_kind.all_steps, 1)
    )
    transaction.on_commit(lambda: _rq_enqueue(job.pk))
    return job


def store_active_job(store_id: int) -> str | None:
    """The active operation on a store, for stores.operations (registered in apps.py)."""
    job = Job.objects.filter(store_id=store_id, status__in=Job.ACTIVE).order_by("pk").first()
    if job is None:
        return None
    since = job.started_at or job.created_at  # aware, in UTC
    return (
        f"This store is busy: {job.get_kind_display().lower()} (job #{job.pk}) is "
        f"{job.get_status_display().lower()} since {since:%H:%M} UTC."
    )


def _rq_job_id(job_id: int) -> str:
    return f"provisioning-job-{job_id}"


def _rq_enqueue(job_id: int) -> None:
    job = Job.objects.only("kind", "timeout_seconds").get(pk=job_id)
    rq_job_id = enqueue_recorded(
        queue=kind_get(job.kind).queue,
        function=jobs.provisioning_job_run,
        args=(job_id,),
        job_id=_rq_job_id(job_id),
        job_timeout=job.timeout_seconds,
    )
    if rq_job_id:
        Job.objects.filter(pk=job_id).update(rq_job_id=rq_job_id)


@transaction.atomic
def _job_claim(job_id: int) -> ProvisioningJob | None:
    job = Job.objects.select_for_update().select_related("store").get(pk=job_id)
    if job.status != Job.Status.QUEUED:
        return None  # already claimed by another worker, or reaped
    job.status = Job.Status.RUNNING
    job.started_at = timezone.now()
    job.save(update_fields=["status", "started_at"])
    job_kind = kind_get(job.kind)
    to = job_kind.store_status_on_start
    if to and job.store.status != to:
        store_transition(store_id=job.store_id, to=to, note=f"job #{job.pk} started")
    if job_kind.on_start:
        job_kind.on_start(job.pk)
    return job


def _step_log(step: JobStep, message: str) -> None:
    JobLogLine.objects.create(step=step, message=message)


def job_execute(*, job_id: int) -> None:
    """Run a claimed job's steps in order. No transaction is held while a step talks to Docker or restic.

    The worker holds the job's liveness lock meanwhile (provisioning.liveness), so the reaper fails the job
    as soon as the worker is gone instead of after its timeout. If the database goes away under the job (a
    MariaDB restart), the failure is recorded once it answers again."""
    with liveness.job_hold(job_id=job_id) as held:
        if not held:
            return  # another live worker runs it
        host = (
            Job.objects.filter(pk=job_id, status=Job.Status.QUEUED)
            .values_list("kind", "host_waits", "store__host_id", "store__host__name", "store__host__job_slots")
            .first()
        )
        kind, waits, host_id, host_name, slots = host or (None, 0, None, "", None)
        # Given way at most ORDERS_FIRST_MAX_WAITS times: a steady stream of orders must not keep the pool
        # empty for ever (its orders would all be built from scratch).
        orders_ahead = kind_get(kind).orders_ahead if kind else None
        if orders_ahead and waits < settings.ORDERS_FIRST_MAX_WAITS and (orders := orders_ahead(job_id)):
            delay = settings.ORDERS_FIRST_WAIT_SECONDS
            first = f"new stores of paying customers go first ({orders} being set up)"
            _job_wait(job_id=job_id, message=f"waiting: {first}; trying again every {delay} s", delay=delay)
            return
        slots = slots or settings.HOST_JOB_SLOTS
        with host_slots.host_slot_hold(host_id=host_id, slots=slots) as slot:
            if slot is False:
                _job_wait_for_host(job_id=job_id, host_name=host_name, slots=slots)
                return
            try:
                _job_run(job_id)
            except (OperationalError, InterfaceError) as exc:
                _job_fail_when_database_returns(job_id=job_id, error=exc)
                raise


def _job_wait_for_host(*, job_id: int, host_name: str, slots: int) -> None:
    """Every slot of the job's host is held (provisioning/host_slots.py): put the job back on its queue, due
    again in HOST_JOB_WAIT_SECONDS, so this worker goes on with other hosts' jobs. The job stays queued; its
    first wait is logged on its first pending step, for staff, and each wait is counted (`host_waits`)."""
    delay = settings.HOST_JOB_WAIT_SECONDS
    message = f"waiting: host {host_name} runs {slots} job{'s' if slots != 1 else ''}; trying again every {delay} s"
    _job_wait(job_id=job_id, message=message, delay=delay)


def _job_wait(*, job_id: int, message: str, delay: int) -> None:
    """Put a queued job back on its queue, due again in `delay` seconds (the workers' scheduler moves it
    back); the worker goes on with other jobs. The job stays queued; its first wait is logged on its first
    pending step, for staff, and each wait is counted (`host_waits`)."""
    job = Job.objects.only("kind", "timeout_seconds", "host_waits").get(pk=job_id)
    waits = job.host_waits + 1
    logger.info("job %s %s", job_id, message)
    if waits == 1:
        step = JobStep.objects.filter(job_id=job_id, status=JobStep.Status.PENDING).order_by("order").first()
        if step is not None:
            _step_log(step, message)
    rq_job_id = f"{_rq_job_id(job_id)}-wait-{waits}"
    # Put back first, then recorded: until the record names the new id, the recovery check (jobs_requeue_lost)
    # finds the RQ job running now, pending, and never enqueues a second chain.
    django_rq.get_queue(kind_get(job.kind).queue).enqueue_in(
        timedelta(seconds=delay),
        jobs.provisioning_job_run,
        job_id,
        job_id=rq_job_id,
        job_timeout=job.timeout_seconds,
    )
    Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(host_waits=waits, rq_job_id=rq_job_id)


def _job_fail_when_database_returns(*, job_id: int, error: BaseException, wait_seconds: float = 60) -> None:
    """Record the failure of a job whose database connection failed: reconnect and try again for a while (a
    restart takes seconds). If the database stays away, the reaper fails the job once it is back: this
    worker's liveness lock went with its old connection."""
    deadline = time.monotonic() + wait_seconds
    while True:
        if not connection.in_atomic_block:
            with suppress(DatabaseError):
                connection.close()  # Django would go on using the dead connection
        try:
            step_id = JobStep.objects.filter(job_id=job_id, status=JobStep.Status.RUNNING).values_list("pk", flat=True)
            _job_fail(job_id=job_id, step_id=step_id.first(), error=error)
            return
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline:
                logger.exception("job %s: the database did not come back; the reaper will fail the job", job_id)
                return
            time.sleep(1)


def _job_run(job_id: int) -> None:
    job = _job_claim(job_id)
    if job is None:
        return
    job_kind = kind_get(job.kind)
    undo_name = job_kind.undo.name if job_kind.undo else None
    succeeded = False
    try:
        for step in job.steps.order_by("order"):
            if step.status in (JobStep.Status.SUCCEEDED, JobStep.Status.SKIPPED) or step.name == undo_name:
                continue
            store = Store.objects.select_related("host", "plan", "customer").get(pk=job.store_id)
            if not _job_may_continue(job, job_kind, store, step):
                return
            try:
                _step_run(job, job_kind, step, store)
            except Exception as exc:
                if undo_name:
                    _job_undo(job, job_kind)
                _job_fail(job_id=job.pk, step_id=step.pk, error=exc)
                raise
        if undo_name:
            job.steps.filter(name=undo_name, status=JobStep.Status.PENDING).update(
                status=JobStep.Status.SKIPPED, output="nothing to put back: every step succeeded"
            )
        succeeded = _job_succeed(job_id=job.pk)
    finally:
        _job_after(job_kind, job.pk, succeeded)


def _step_run(job: ProvisioningJob, job_kind: JobKind, step: JobStep, store: Store) -> None:
    """Run one step of the job, its row running, then succeeded; an exception leaves the row to the caller."""
    JobStep.objects.filter(pk=step.pk).update(status=JobStep.Status.RUNNING, started_at=timezone.now())
    plan_step = job_kind.step_by_name[step.name]
    log = lambda message: _step_log(step, message)  # noqa: E731
    if plan_step.with_job:
        plan_step.run(store, log, job_id=job.pk)
    else:
        plan_step.run(store, log)
    JobStep.objects.filter(pk=step.pk).update(status=JobStep.Status.SUCCEEDED, finished_at=timezone.now())


def _job_undo(job: ProvisioningJob, job_kind: JobKind) -> None:
    """A step failed: run the kind's undo step now, while the job still holds the store. Its failure is
    recorded on its own row (staff read why the store could not be put back) and never hides the error
    of the step that failed, which the job reports."""
    step = job.steps.filter(name=job_kind.undo.name, status=JobStep.Status.PENDING).first()
    # Claimed in one statement with the job still running: once the reaper has failed the job (and maybe
    # queued an undo job of its own), this worker leaves the put-back to that.
    claimed = step and JobStep.objects.filter(
        pk=step.pk, status=JobStep.Status.PENDING, job__status=Job.Status.RUNNING
    ).update(status=JobStep.Status.RUNNING, started_at=timezone.now())
    if not claimed:
        return  # reaped meanwhile: another operation may own the store now
    try:
        store = Store.objects.select_related("host", "plan", "customer").get(pk=job.store_id)
        _step_run(job, job_kind, step, store)
    except Exception as exc:
        logger.exception("job %s: the undo step failed", job.pk)
        JobStep.objects.filter(pk=step.pk).update(
            status=JobStep.Status.FAILED,
            finished_at=timezone.now(),
            output="".join(traceback.format_exception(exc)).strip()[-20_000:],
        )
        _step_log(step, f"failed: {type(exc).__name__}: {exc}")


def _job_after(job_kind: JobKind, job_id: int, succeeded: bool) -> None:
    """The kind's clean-up, in the worker, outside any transaction; never for a job reaped meanwhile (another
    operation may own the store by now). A clean-up that fails is logged: the job's outcome stands."""
    if job_kind.after is None:
        return
    if not Job.objects.filter(pk=job_id, reaped_at=None).exists():
        return
    try:
        job_kind.after(job_id, succeeded)
    except Exception:
        logger.exception("job %s: the clean-up after the job failed", job_id)


def _job_may_continue(job: ProvisioningJob, job_kind: JobKind, store: Store, step: JobStep) -> bool:
    """Before every step, on fresh rows: the job must still be running (not reaped while this worker was
    presumed dead, after which another operation may own the store) and the store still in a status this
    kind of job works on, so a resume never starts a store that was deleted meanwhile."""
    if not Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).exists():
        logger.warning("job %s was reaped before step %s; nothing more is done", job.pk, step.name)
        return False
    if _store_may_run(job_kind, store):
        return True
    _job_fail(
        job_id=job.pk,
        step_id=step.pk,
        error=f"the store became {store.get_status_display().lower()} before this step; nothing more was done",
    )
    return False


@transaction.atomic
def _job_succeed(*, job_id: int) -> bool:
    job = Job.objects.select_for_update().get(pk=job_id)
    if job.status != Job.Status.RUNNING:
        # Reaped while this worker was presumed dead; a newer job owns the store now.
        logger.warning("job %s finished after it was marked %s; result ignored", job.pk, job.status)
        return False
    job.status = Job.Status.SUCCEEDED
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "finished_at"])
    job_kind = kind_get(job.kind)
    to = job_kind.store_status_on_success
    if to:
        store_transition(store_id=job.store_id, to=to, note=f"job #{job.pk} succeeded")
    if job_kind.on_success:
        # In this transaction: what the hook queues with on_commit starts once the store is free.
        job_kind.on_success(job.pk)
    return True


@transaction.atomic
def _job_fail(*, job_id: int, step_id: int | None, error: BaseException | str, reaped: bool = False) -> None:
    """Mark the step, the job and (for provisioning) the store failed, with the step's error; the steps that
    never ran are marked skipped. The kind's on_failure hook moves its domain record in the same transaction."""
    job = Job.objects.select_for_update().get(pk=job_id)
    if job.status not in Job.ACTIVE:
        return
    now = timezone.now()
    detail = error if isinstance(error, str) else "".join(traceback.format_exception(error)).strip()
    summary = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    step = JobStep.objects.filter(pk=step_id).first() if step_id else None
    if step is not None:
        step.status = JobStep.Status.FAILED
        step.finished_at = now
        step.output = detail[-20_000:]
        step.save(update_fields=["status", "finished_at", "output"])
        JobLogLine.objects.create(step=step, message=f"failed: {summary}")
    job.steps.filter(status=JobStep.Status.PENDING).update(
        status=JobStep.Status.SKIPPED, output="not run: an earlier step failed"
    )
    if reaped:  # another step the dead worker was in (its own undo, after a step failed): it never finished
        job.steps.filter(status=JobStep.Status.RUNNING).update(
            status=JobStep.Status.FAILED, finished_at=now, output="interrupted: the worker stopped"
        )
    job.status = Job.Status.FAILED
    job.finished_at = now
    job.reaped_at = now if reaped else None
    job.error = f"step “{step.title if step else 'unknown'}” failed: {summary}\n\n{detail}"[-50_000:]
    job.save(update_fields=["status", "finished_at", "reaped_at", "error"])
    job_kind = kind_get(job.kind)
    if job_kind.fails_store:
        store = Store.objects.get(pk=job.store_id)
        if store.status in (S.QUEUED, S.PROVISIONING):
            store_transition(
                store_id=store.pk,
                to=S.FAILED,
                note=f"job #{job.pk}: {summary}"[:2000],
                message=(
                    f"Setting up your store stopped at “{step.title if step else 'an unknown step'}”. "
                    "Our team has been notified and will retry it."
                ),
            )
    if job_kind.on_failure:
        job_kind.on_failure(job.pk, summary)
    if reaped and job_kind.undo:
        _job_undo_after_reap(job)


def _job_undo_after_reap(job: ProvisioningJob) -> None:
    """A reaped job's worker is gone, so the kind's undo step never ran in it: a store moving or updating would
    stay paused or half-changed until staff noticed. For kinds that say what a reaped job left
    (`undo_after_reap`), an `undo` job runs that step now. It is queued in the reaper's transaction, so the
    store passes from the dead job to the undo with no gap for another operation."""
    job_kind = kind_get(job.kind)
    undo_step = job.steps.filter(name=job_kind.undo.name)
    if job_kind.undo_after_reap is None:
        return  # as before: staff look at it (an import's or a push's put-back is not run for them)
    if job_undo_done_by(job):
        return  # the worker put it back itself, then died before it could fail the job
    if not job_kind.undo_after_reap(job.pk):
        undo_step.update(output="not run: the worker stopped where this kind leaves putting back to staff")
        return
    interrupted = undo_step.filter(status=JobStep.Status.FAILED).exists()  # the worker died inside it
    try:
        with transaction.atomic():
            undo = job_undo_enqueue(job_id=job.pk)
    except (JobConflict, InvalidTransition, DatabaseError) as exc:  # the reap itself must still commit
        logger.warning("job %s was reaped; its undo could not be queued: %s", job.pk, exc)
        undo_step.update(output=f"not run: the worker stopped, and putting back could not be queued: {exc}")
        return
    when = "while it ran" if interrupted else "before it ran"
    undo_step.update(output=f"the worker stopped {when}: job #{undo.pk} runs it")


def job_undo_done_by(job: ProvisioningJob) -> str | None:
    """Who ran the job's undo step to its end ("job #N", an undo job, or the job's own worker), else None."""
    done = job.undo_jobs.filter(status=Job.Status.SUCCEEDED).order_by("pk").first()
    if done is not None:
        return f"job #{done.pk}"
    if job.steps.filter(name=kind_get(job.kind).undo.name, status=JobStep.Status.SUCCEEDED).exists():
        return f"job #{job.pk}'s own worker"
    return None


@transaction.atomic  # the undo job, its link and its timeout commit together, before a worker can take it
def job_undo_enqueue(*, job_id: int, actor: User | None = None) -> ProvisioningJob:
    """Queue an `undo` job (provisioning/undo.py) running the undo step of failed job `job_id`, with that
    job's timeout. Refused for a kind that does not put back after a reap or says nothing is left, for a
    store no longer in a status the kind runs on, while the store is busy, once the undo step ran to its end
    (in its worker or an undo job), and once any later job of the store started: putting back what this
    one changed could then undo later work (a newer move's stack, a restart that put a version live)."""
    job = Job.objects.get(pk=job_id)
    job_kind = kind_get(job.kind)
    if job_kind.undo_after_reap is None or not job_kind.undo_after_reap(job.pk):
        raise InvalidTransition(f"job #{job.pk} ({job.kind}) has nothing to put back")
    store = Store.objects.get(pk=job.store_id)
    if store.status not in job_kind.store_statuses:  # e.g. an update's put-back would serve a suspended store
        raise InvalidTransition(
            f"the store is {store.get_status_display().lower()} now; job #{job.pk} ({job.kind}) is not put back"
        )
    done_by = job_undo_done_by(job)
    if done_by:
        raise InvalidTransition(f"{done_by} put back what job #{job.pk} changed already")
    later = (
        Job.objects.filter(store_id=job.store_id, pk__gt=job.pk, started_at__isnull=False)
        .exclude(undo_of=job)
        .order_by("pk")
        .first()
    )
    if later is not None:
        raise JobConflict(
            f"job #{later.pk} ({later.kind}) ran after job #{job.pk}: putting back what #{job.pk} changed could "
            "undo it; check the store by hand"
        )
    undo = job_enqueue(store_id=job.store_id, kind=Job.Kind.UNDO, actor=actor)
    # In this transaction, before the commit that puts it on RQ: its worker reads the link, RQ the timeout.
    Job.objects.filter(pk=undo.pk).update(undo_of=job, timeout_seconds=job.timeout_seconds)
    undo.undo_of, undo.timeout_seconds = job, job.timeout_seconds
    return undo


def jobs_reap_stale(*, now=None) -> list[int]:
    """Fail running jobs whose worker is gone (nothing holds their liveness lock: the process died, or the
    database restarted under it) or that ran past their timeout (a worker that hangs)."""
    now = now or timezone.now()
    reaped = []
    for job in Job.objects.filter(status=Job.Status.RUNNING).only("pk", "started_at", "timeout_seconds"):
        if job.started_at and job.started_at + timedelta(seconds=job.timeout_seconds) < now:
            error = f"the job ran past its {job.timeout_seconds} s timeout; the worker probably died"
        elif liveness.job_holder_alive(job_id=job.pk) is False:
            error = "the worker running the job is gone (it stopped, or lost its database connection)"
        else:
            continue
        running = job.steps.filter(status=JobStep.Status.RUNNING).first()
        _job_fail(job_id=job.pk, step_id=running.pk if running else None, error=error, reaped=True)
        reaped.append(job.pk)
    return reaped


def jobs_requeue_lost(*, now=None, grace_seconds: int = 60) -> list[int]:
    """Enqueue again the jobs recorded as queued whose RQ job is gone (the process that created them died
    between the commit and the enqueue, or Redis lost its data), so a recorded job always runs and never
    holds its store for ever. `_job_claim` makes a second delivery harmless."""
    settled = (now or timezone.now()) - timedelta(seconds=grace_seconds)
    requeued = []
    queued = Job.objects.filter(status=Job.Status.QUEUED, created_at__lt=settled)
    for job_id, kind, rq_job_id in queued.values_list("pk", "kind", "rq_job_id"):
        # A job put back to wait for its host's slot is pending under the id of its latest wait.
        if not rq_job_pending(queue=kind_get(kind).queue, job_id=rq_job_id or _rq_job_id(job_id)):
            logger.warning("job %s was queued but its RQ job is gone; enqueued again", job_id)
            _rq_enqueue(job_id)
            requeued.append(job_id)
    return requeued


def store_retry(*, store_id: int, actor: User | None = None) -> ProvisioningJob:
    return job_enqueue(store_id=store_id, kind=Job.Kind.RETRY, actor=actor)


def job_retry(*, job_id: int, actor: User | None = None) -> ProvisioningJob:
    """Run a failed job again as a new job that walks the same plan: every step is idempotent, so the steps
    that had succeeded find their work done and the work resumes at the step that failed (a failed
    provisioning runs as a retry of the failed store)."""
    job = Job.objects.get(pk=job_id)
    if job.status != Job.Status.FAILED:
        raise InvalidTransition(f"job #{job.pk} is {job.status}; only a failed job can be retried")
    job_kind = kind_get(job.kind)
    if job_kind.retry:  # the app makes a new domain record (a backup run) with its job
        try:
            return job_kind.retry(job.pk, actor)
        except StoreBusy as exc:  # the app's own busy error (BackupConflict): one answer for every caller
            raise JobConflict(str(exc)) from None
    return job_enqueue(store_id=job.store_id, kind=job_kind.retry_as or job.kind, actor=actor)


def store_vhost_write(*, store: Store, mode: str, force_reload: bool = False, settle: bool = True):
    """Write the store's nginx vhost from what the store is now: its names (store_names_ensure gives it its
    platform name first), its upstream, the mode, its certificate and HSTS choice, and its plan's firewall
    (advanced_security). Every vhost of a store is written here, so whatever rewrites it (a plan change's
    job, a suspension, a renewal) brings the vhost in line with the store.

    The certificate on disk is used for the names it covers while it is valid, even when other names still
    wait for theirs (a custom domain whose DNS is not pointed yet): those stay on HTTP."""
    rows = store_names_ensure(store_id=store.pk)
    served = [row.name for row in rows]
    legacy = _store_proxy_legacy(store)
    if legacy:
        acme_client.certificate_copy(source=legacy, destination=store.proxy_key)
    certificate, tls_names = _store_certificate(store)
    basic_auth_file = None
    if store.staging_of_id:  # a staging copy: basic auth with the merchant's credentials, never indexed
        credentials = store_credentials(store)
        basic_auth_file = str(
            proxy.basic_auth_write(
                store_id=store.pk, user=credentials["staging_user"], password=credentials["staging_password"]
            )
        )
    path = proxy.vhost_write(
        store_id=store.pk,
        domain=store.proxy_key,
        names=served,
        upstream=f"{store.host.bind_address}:{store.port}",
        mode=mode,
        firewall=store.plan.advanced_security,
        certificate=certificate,
        tls_names=tls_names,
        hsts=store.hsts_enabled,
        primary=_redirect_target(rows, tls_names),
        replaces=legacy,
        basic_auth_file=basic_auth_file,
        noindex=store.staging_of_id is not None,
        force_reload=force_reload,
        settle=settle,
    )
    if legacy:  # the new file serves the names now, and the old one is gone: so can its certificate
        acme_client.certificate_remove(domain=legacy)
    return path


def _store_proxy_legacy(store: Store) -> str | None:
    """The signup domain a store from before proxy keys has its vhost (and certificate) under, if any."""
    if store.domain and store.domain != store.proxy_key and proxy.vhost_belongs(domain=store.domain, store_id=store.pk):
        return store.domain
    return None


def _redirect_target(rows: list[StoreName], tls_names: list[str]) -> str | None:
    """The name the store's other names redirect to: its primary name, once we know it reaches us. A platform
    name always does (the platform's DNS); a custom one once proven and, where TLS is on, once on the
    certificate (its http-01 validation went through our proxy). Until then (a primary served without proof,
    from before the proof, or one whose DNS is not pointed yet) every name is served as itself."""
    primary = next((row for row in rows if row.is_primary and row.status == StoreName.Status.ACTIVE), None)
    if primary is None:
        return None
    if primary.kind == StoreName.Kind.PLATFORM:
        return primary.name
    if primary.proved_at is None:
        return None
    if settings.TLS_ENABLED and primary.name not in tls_names:
        return None
    return primary.name


@transaction.atomic
def store_hsts_change(*, store_id: int, enabled: bool, actor: User | None = None) -> ProvisioningJob:
    """Turn HSTS on or off for the store and rewrite its vhost in a job; both or neither (JobConflict when
    another operation holds the store)."""
    from stores.services import store_hsts_set

    store_hsts_set(store_id=store_id, enabled=enabled, actor=actor)
    return job_enqueue(store_id=store_id, kind=Job.Kind.HTTPS_SETTINGS, actor=actor)


def _store_certificate(store: Store):
    """(certificate, the names it covers) when the store has an unexpired one on disk, else (None, [])."""
    if not settings.TLS_ENABLED:
        return None, []
    expires_at = acme_client.certificate_expires_at(domain=store.proxy_key)
    if expires_at is None or expires_at <= timezone.now():
        return None, []
    return acme_client.certificate_paths(store.proxy_key), acme_client.certificate_names(domain=store.proxy_key)


def store_tls_ensure(*, store_id: int) -> Store:
    """Issue one certificate for every active name of the store (SANs) and serve them on HTTPS.

    When the CA refuses some names (a custom domain not pointed at us), the others get their certificate at
    once without them, the refused names count a failure (store_names_tls_result: at TLS_NAME_MAX_FAILURES
    in a row a name is reported unreachable and left off), and a retry is scheduled with exponential backoff
    (2, 4, 8 … minutes, capped). No transaction is held during issuance."""
    store = Store.objects.select_related("host", "plan").get(pk=store_id)
    if store.status not in (S.PROVISIONING, S.ACTIVE, S.SUSPENDED):
        return store
    names = [row.name for row in store_names_ensure(store_id=store.pk) if row.status == StoreName.Status.ACTIVE]
    if not names:
        Store.objects.filter(pk=store.pk).update(
            tls_status=Store.TLS.FAILED,
            tls_error="none of the store's names points at the platform",
            tls_next_attempt_at=None,
        )
        return Store.objects.get(pk=store.pk)
    certificate, issued, failed, error = None, [], {}, ""
    try:
        certificate, issued = acme_client.certificate_issue(domain=store.proxy_key, names=names), names
    except acme_client.CertificateError as exc:
        failed, error = dict(exc.failed_names), str(exc)
        rest = [name for name in names if name not in failed]
        if failed and rest:  # the names the CA did not refuse need not wait for the others
            try:
                certificate, issued = acme_client.certificate_issue(domain=store.proxy_key, names=rest), rest
            except acme_client.CertificateError as again:
                failed.update(again.failed_names)
                error = str(again)
    given_up = store_names_tls_result(
        store_id=store.pk, issued=issued, failed=failed, max_failures=settings.TLS_NAME_MAX_FAILURES
    )
    if certificate is not None:
        store_vhost_write(
            store=store, mode="maintenance" if store.status == S.SUSPENDED else "proxy", force_reload=True
        )
    waiting = (set(failed) - set(given_up)) if failed else (set() if certificate else set(names))
    if not waiting:
        Store.objects.filter(pk=store.pk).update(
            tls_status=Store.TLS.ISSUED if certificate else Store.TLS.FAILED,
            tls_error="" if certificate else error[:2000],
            tls_attempts=0,
            tls_next_attempt_at=None,
        )
        return Store.objects.get(pk=store.pk)
    attempts = store.tls_attempts + 1
    delay = min(120 * 2 ** (attempts - 1), settings.TLS_RETRY_MAX_DELAY)
    Store.objects.filter(pk=store.pk).update(
        tls_status=Store.TLS.PENDING,
        tls_error=error[:2000],
        tls_attempts=attempts,
        tls_next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    transaction.on_commit(
        lambda: django_rq.get_queue("provisioning").enqueue_in(
            timedelta(seconds=delay), jobs.store_tls_retry, store.pk, job_id=_tls_retry_job_id(store.pk, attempts)
        )
    )
    return Store.objects.get(pk=store.pk)


def _tls_retry_job_id(store_id: int, attempt: int) -> str:
    return f"store-tls-retry-{store_id}-{attempt}"


def stores_tls_retry_lost(*, now=None, grace_seconds: int = 60) -> list[int]:
    """Enqueue now the certificate retries that are overdue and that RQ no longer holds: a scheduled job lives
    only in Redis, which a restart empties, and nothing else would ever try again (the store stays on HTTP).
    Each retry's RQ job id names its attempt, so one that is only late is not run twice."""
    overdue = (now or timezone.now()) - timedelta(seconds=grace_seconds)
    live = (S.PROVISIONING, S.ACTIVE, S.SUSPENDED)  # the statuses store_tls_ensure works on
    pending = Store.objects.filter(tls_status=Store.TLS.PENDING, tls_next_attempt_at__lt=overdue, status__in=live)
    requeued = []
    for store_id, attempt in pending.values_list("pk", "tls_attempts"):
        job_id = _tls_retry_job_id(store_id, attempt)
        if not rq_job_pending(queue="provisioning", job_id=job_id):
            logger.warning("store %s: its certificate retry was lost from RQ; enqueued again", store_id)
            django_rq.get_queue("provisioning").enqueue(jobs.store_tls_retry, store_id, job_id=job_id)
            requeued.append(store_id)
    return requeued


def store_certificate_short(store: Store) -> list[str]:
    """The store's active names its certificate on disk does not cover (all of them when it has none)."""
    active = store.names.filter(status=StoreName.Status.ACTIVE).values_list("name", flat=True)
    covered = set(acme_client.certificate_names(domain=store.proxy_key))
    return [name for name in active if name not in covered]


def stores_tls_renew_due(*, within: timedelta = timedelta(days=30)) -> list[int]:
    """Renew certificates that expire within `within` (Let's Encrypt's last 30 of 90 days), and those that
    do not cover every active name of their store (a store from before platform names, a name back in
    service). The new certificate covers every active name; unreachable ones are not renewed in vain."""
    renewed = []
    deadline = timezone.now() + within
    for store in Store.objects.filter(tls_status=Store.TLS.ISSUED, status__in=(S.ACTIVE, S.SUSPENDED)):
        expires_at = acme_client.certificate_expires_at(domain=store.proxy_key)
        if expires_at is None or expires_at <= deadline or store_certificate_short(store):
            store_tls_ensure(store_id=store.pk)
            renewed.append(store.pk)
    return renewed


def stores_usage_sample(*, now=None) -> int:
    """Record the memory and CPU of every active store's containers; samples older than 2 days go.

    The engine takes about a second per reading (two samples for the CPU share), so readings run in
    parallel, a few at a time."""
    now = now or timezone.now()
    stores = list(Store.objects.filter(status=S.ACTIVE).select_related("host", "plan"))
    stacks = [(store, stack_for(store)) for store in stores]
    targets = [(store, stack.container_name(service.role)) for store, stack in stacks for service in stack.services()]
    with ThreadPoolExecutor(max_workers=8) as pool:
        readings = list(
            pool.map(lambda t: docker_client.container_usage(name=t[1], base_url=t[0].host.engine), targets)
        )
    by_store: dict[int, list] = {}
    for (store, _), reading in zip(targets, readings, strict=True):
        if reading is not None:
            by_store.setdefault(store.pk, []).append(reading)
    StoreUsageSample.objects.bulk_create(
        StoreUsageSample(
            store_id=store_id,
            taken_at=now,
            memory_bytes=sum(r.memory_bytes for r in found),
            memory_limit_bytes=sum(r.memory_limit_bytes for r in found),
            cpu_percent=sum(r.cpu_percent for r in found),
        )
        for store_id, found in by_store.items()
    )
    StoreUsageSample.objects.filter(taken_at__lt=now - timedelta(days=2)).delete()
    return len(by_store)


def stores_disk_measure(*, now=None) -> int:
    """Record what every live or suspended store's volumes (its database and files) take on disk, one engine
    report per host; stores.services.store_disk_record tells the merchant at 80 % and over 100 % of the plan's
    allowance. A store's staging copy (on the same host) counts against its live store's allowance: its
    volumes are added to the live store's, whatever the copy's status, and also recorded on the copy's own
    row for staff. A host whose engine does not answer is skipped (logged) and measured next time."""
    now = now or timezone.now()
    stores = Store.objects.filter(status__in=[S.ACTIVE, S.SUSPENDED]).exclude(host=None).select_related("host")
    copies: dict[int, list[str]] = {}  # live store id -> the object keys of its staging copies with volumes
    for copy_id, live_id, stack_key in (
        Store.objects.filter(staging_of__isnull=False)
        .exclude(status=S.DELETED)
        .values_list("pk", "staging_of_id", "stack_key")
    ):
        copies.setdefault(live_id, []).append(stack_key or str(copy_id))  # as Store.object_key
    by_host: dict[int, list[Store]] = {}
    for store in stores:
        by_host.setdefault(store.host_id, []).append(store)
    measured = 0
    for host_stores in by_host.values():
        host = host_stores[0].host
        try:
            sizes = docker_client.volume_sizes_by_label(key="shophosting.store", base_url=host.engine)
        except docker_client.ProvisioningError as exc:
            logger.warning("disk use of the stores on %s not measured: %s", host.name, exc)
            continue
        for store in host_stores:
            staging = sum(sizes.get(copy_key, 0) for copy_key in copies.get(store.pk, []))
            store_disk_record(
                store_id=store.pk,
                used_bytes=sizes.get(store.object_key, 0) + staging,
                staging_bytes=staging,
                measured_at=now,
            )
            measured += 1
    return measured
