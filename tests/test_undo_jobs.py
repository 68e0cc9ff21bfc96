"""A reaped job's undo step runs in an `undo` job the reaper queues (provisioning/undo.py), through the real
engine and an RQ worker; with a test kind that touches no engine (tests/undo_probe_kind.py). The same path on
a real move, its worker killed in the switch window: tests/test_fleet_move_reaped.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.exceptions import JobConflict
from provisioning.models import JobLogLine, JobStep, ProvisioningJob
from provisioning.services import job_enqueue, job_retry, job_undo_enqueue, jobs_reap_stale
from stores.exceptions import InvalidTransition
from tests import undo_probe_kind
from tests.undo_probe_kind import UNDOABLE_KIND

pytestmark = pytest.mark.django_db

Job = ProvisioningJob


@pytest.fixture(autouse=True)
def undoable_kind():
    undo_probe_kind.kind_register()
    undo_probe_kind.fail_next_undo.clear()


def _running_job_without_a_worker(store) -> Job:
    """A job a worker claimed and then died in: running, its step running, nobody holding its liveness lock."""
    job = job_enqueue(store_id=store.pk, kind=UNDOABLE_KIND)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, started_at=timezone.now())
    job.steps.filter(name="change").update(status=JobStep.Status.RUNNING, started_at=timezone.now())
    return job


def _reaped_with_a_failed_undo(store, capture, run_worker) -> tuple[Job, Job]:
    """A job whose worker died, reaped, and its undo job failed (the engine did not answer): (job, undo)."""
    job = _running_job_without_a_worker(store)
    undo_probe_kind.fail_next_undo.append("the engine did not answer")
    with capture(execute=True):
        jobs_reap_stale()
    with capture(execute=True):
        run_worker()
    return job, Job.objects.get(undo_of=job)


def _assert_succeeded(job: Job) -> None:
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error


def _log(job: Job) -> str:
    return "\n".join(JobLogLine.objects.filter(step__job=job).order_by("pk").values_list("message", flat=True))


def test_the_reaper_queues_the_undo_of_a_job_whose_worker_died_and_a_worker_runs_it(
    recorded_active_store, django_capture_on_commit_callbacks, run_provisioning_worker
):
    store = recorded_active_store
    job = _running_job_without_a_worker(store)

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_reap_stale() == [job.pk]

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.reaped_at is not None
    undo = Job.objects.get(undo_of=job)
    assert (undo.kind, undo.status) == (Job.Kind.UNDO, Job.Status.QUEUED)
    put_back = job.steps.get(name="put_back")
    assert put_back.status == JobStep.Status.SKIPPED and f"job #{undo.pk} runs it" in put_back.output
    # The store passed from the dead job to the undo: nothing else can start on it meanwhile.
    with pytest.raises(JobConflict, match=f"#{undo.pk}"):
        job_enqueue(store_id=store.pk, kind=Job.Kind.RESTART)

    with django_capture_on_commit_callbacks(execute=True):
        run_provisioning_worker()

    undo.refresh_from_db()
    assert undo.status == Job.Status.SUCCEEDED, undo.error
    log = _log(undo)
    assert f"job #{job.pk} (Change and put back (tests only)) stopped at “Change the store”" in log
    assert f"put back what job #{job.pk} changed on {store.domain}" in log  # the reaped job's own records
    event = store.events.order_by("pk").last()
    assert f"job #{undo.pk} put back what job #{job.pk}" in event.note


def test_a_failed_undo_is_retried_for_the_same_job_and_refused_after_a_later_job_of_its_kind(
    recorded_active_store, django_capture_on_commit_callbacks, run_provisioning_worker
):
    store = recorded_active_store
    job, failed = _reaped_with_a_failed_undo(store, django_capture_on_commit_callbacks, run_provisioning_worker)
    assert failed.status == Job.Status.FAILED and "the engine did not answer" in failed.error

    with django_capture_on_commit_callbacks(execute=True):
        again = job_retry(job_id=failed.pk)
    assert again.kind == Job.Kind.UNDO and again.undo_of_id == job.pk
    with django_capture_on_commit_callbacks(execute=True):
        run_provisioning_worker()
    _assert_succeeded(again)

    # Put back once: the failed undo's retry would do it again over whatever came since.
    with pytest.raises(InvalidTransition, match=f"job #{again.pk} put back what job #{job.pk} changed already"):
        job_retry(job_id=failed.pk)
    assert Job.objects.filter(undo_of=job).count() == 2


def test_no_undo_is_queued_once_a_later_job_of_the_kind_ran(
    recorded_active_store, django_capture_on_commit_callbacks, run_provisioning_worker
):
    store = recorded_active_store
    job = _running_job_without_a_worker(store)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED)  # failed, and its undo never queued
    with django_capture_on_commit_callbacks(execute=True):
        later = job_enqueue(store_id=store.pk, kind=UNDOABLE_KIND)
    with django_capture_on_commit_callbacks(execute=True):
        run_provisioning_worker()
    _assert_succeeded(later)

    with pytest.raises(JobConflict, match=rf"job #{later.pk} \(test_undoable\) ran after job #{job.pk}"):
        job_undo_enqueue(job_id=job.pk)
    assert not Job.objects.filter(undo_of=job).exists()


def test_an_undo_is_not_run_beside_a_worker_that_still_holds_the_reaped_job(
    recorded_active_store, django_capture_on_commit_callbacks, run_provisioning_worker
):
    """Reaped for its timeout while its worker still runs (hangs): the undo job fails with the reason rather
    than put back under that worker, and staff retry it."""
    from provisioning import liveness

    store = recorded_active_store
    job = _running_job_without_a_worker(store)
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=2))
    with liveness.job_hold(job_id=job.pk) as held:  # the hung worker's hold
        assert held
        with django_capture_on_commit_callbacks(execute=True):
            assert jobs_reap_stale() == [job.pk]
        with django_capture_on_commit_callbacks(execute=True):
            run_provisioning_worker()
    undo = Job.objects.get(undo_of=job)
    assert undo.status == Job.Status.FAILED and "still holds it" in undo.error
    assert "could not put back" in store.events.order_by("pk").last().note

    with django_capture_on_commit_callbacks(execute=True):  # that worker has stopped now
        again = job_retry(job_id=undo.pk)
    with django_capture_on_commit_callbacks(execute=True):
        run_provisioning_worker()
    _assert_succeeded(again)


def test_a_reaped_job_of_a_kind_without_undo_gets_no_undo_job(recorded_active_store):
    job = Job.objects.create(
        store=recorded_active_store, kind=Job.Kind.RESTART, status=Job.Status.RUNNING, started_at=timezone.now()
    )
    assert jobs_reap_stale() == [job.pk]
    assert not Job.objects.filter(undo_of=job).exists()
    with pytest.raises(InvalidTransition, match="nothing to put back"):
        job_undo_enqueue(job_id=job.pk)


def test_a_move_reaped_after_its_switch_gets_no_undo_job_for_the_store_runs_on_the_target(recorded_active_store):
    """Putting back a switched move would remove the stack the store runs on: the move kind says not to (only
    the old stack's removal is left, which its retry does)."""
    from provisioning.move_models import StoreMove
    from stores.models import Store
    from tests.test_fleet import _hosts

    home, target = _hosts("undo-home", "undo-target")
    Store.objects.filter(pk=recorded_active_store.pk).update(host=target, port=target.port_range_start)
    job = job_enqueue(store_id=recorded_active_store.pk, kind=Job.Kind.MOVE)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, started_at=timezone.now())
    job.steps.filter(name="remove").update(status=JobStep.Status.RUNNING)
    move = StoreMove.objects.create(
        store=recorded_active_store,
        job=job,
        source_host=home,
        source_port=home.port_range_start,
        target_host=target,
        target_port=target.port_range_start,
        status=StoreMove.Status.SWITCHED,
    )

    assert jobs_reap_stale() == [job.pk]

    move.refresh_from_db()
    assert move.status == StoreMove.Status.FAILED_AFTER_SWITCH
    assert not Job.objects.filter(undo_of=job).exists()
    assert "leaves putting back to staff" in job.steps.get(name="put_back").output
    with pytest.raises(InvalidTransition, match="nothing to put back"):
        job_undo_enqueue(job_id=job.pk)


def test_no_undo_is_queued_for_a_job_whose_worker_put_back_itself_before_it_died(recorded_active_store):
    job = _running_job_without_a_worker(recorded_active_store)
    job.steps.filter(name="put_back").update(status=JobStep.Status.SUCCEEDED)  # then the worker died

    assert jobs_reap_stale() == [job.pk]

    assert not Job.objects.filter(undo_of=job).exists()
    assert job.steps.get(name="put_back").status == JobStep.Status.SUCCEEDED


def test_an_undo_is_refused_once_the_store_is_in_a_status_the_reaped_kind_does_not_run_on(
    recorded_active_store, django_capture_on_commit_callbacks, run_provisioning_worker
):
    """The undo job takes active and suspended stores (a move's), but an active-only kind's put-back (an
    update's routes the store live) must not run on a store suspended since."""
    from stores.models import Store

    store = recorded_active_store
    job, failed = _reaped_with_a_failed_undo(store, django_capture_on_commit_callbacks, run_provisioning_worker)
    Store.objects.filter(pk=store.pk).update(status=Store.Status.SUSPENDED)  # billing suspended it meanwhile

    with pytest.raises(InvalidTransition, match=f"the store is suspended now; job #{job.pk}"):
        job_retry(job_id=failed.pk)


def test_a_worker_that_died_inside_its_own_put_back_has_it_run_again_and_one_that_finished_it_is_not_doubled(
    recorded_active_store, django_capture_on_commit_callbacks, run_provisioning_worker
):
    store = recorded_active_store
    job = _running_job_without_a_worker(store)
    job.steps.filter(name="change").update(status=JobStep.Status.FAILED)
    job.steps.filter(name="put_back").update(status=JobStep.Status.RUNNING)  # the worker died in it

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_reap_stale() == [job.pk]

    put_back = job.steps.get(name="put_back")
    undo = Job.objects.get(undo_of=job)
    assert put_back.status == JobStep.Status.FAILED
    assert f"stopped while it ran: job #{undo.pk} runs it" in put_back.output

    # A worker reaped for its timeout that went on and finished its put-back after all: the undo job does not
    # put back a second time.
    job.steps.filter(name="put_back").update(status=JobStep.Status.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        run_provisioning_worker()
    undo.refresh_from_db()
    assert undo.status == Job.Status.FAILED and "own worker put the store back after all" in undo.error
    with pytest.raises(InvalidTransition, match=f"job #{job.pk}'s own worker put back what job #{job.pk} changed"):
        job_undo_enqueue(job_id=job.pk)
