"""What happens when a new store goes live (provisioning.hooks): backups queues its first backup. The whole
path, from a real provisioning job, is tests/test_provisioning.py::test_a_new_live_store_gets_its_first_backup_
queued_and_its_owner_is_told; these call the registered reactions as the engine does, on a store record."""

import pytest
from django.db import transaction

from backups.models import BackupRun, RunStatus
from backups.services.retention import backups_enqueue_due
from provisioning import hooks
from provisioning.exceptions import DockerUnavailable
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue, job_execute
from stores.models import Store
from stores.services import store_create, store_transition

pytestmark = pytest.mark.django_db


@pytest.fixture
def live_store_record(user_factory, woo_plan):
    """A store walked to active through store_transition, as a provisioning job walks it (no containers)."""
    store = store_create(customer=user_factory(), plan=woo_plan, domain="golive.test")
    for status in (Store.Status.QUEUED, Store.Status.PROVISIONING, Store.Status.ACTIVE):
        store_transition(store_id=store.pk, to=status, note="as a provisioning job would")
    return store


def go_live(store: Store, capture) -> list[str]:
    """The engine's call: inside the transaction that makes the store active; the reactions' work runs
    after its commit. Returns what they logged."""
    lines: list[str] = []
    with capture(execute=True), transaction.atomic():
        hooks.store_live_react(store_id=store.pk, log=lines.append)
    return lines


def test_backups_registers_the_first_backup_from_its_app_config():
    assert "backups.first_backup" in [hook.name for hook in hooks.store_live_hooks()]


def test_a_store_that_goes_live_gets_a_scheduled_backup_queued(live_store_record, django_capture_on_commit_callbacks):
    lines = go_live(live_store_record, django_capture_on_commit_callbacks)
    [run] = BackupRun.objects.filter(store=live_store_record)
    assert (run.kind, run.status) == (BackupRun.Kind.SCHEDULED, RunStatus.QUEUED)
    assert lines == [f"first backup queued (backup #{run.pk}); the next ones follow on the store's schedule"]


def test_a_store_busy_when_it_goes_live_is_backed_up_by_the_next_scheduled_run(
    live_store_record, django_capture_on_commit_callbacks, place_on_unreachable_engine
):
    """No error reaches the provisioning job: the reaction says why it queued nothing, and the scheduled run
    (every 15 minutes) takes the store, which has no backup yet."""
    store = live_store_record
    with transaction.atomic():
        restart = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART)  # e.g. its owner restarts it
    lines = go_live(store, django_capture_on_commit_callbacks)
    assert not BackupRun.objects.filter(store=store).exists()
    [line] = lines
    assert line.startswith(f"the store was busy when it went live (This store is busy: restart (job #{restart.pk})")
    assert line.endswith("the next scheduled backup run takes its first backup")

    assert backups_enqueue_due() == []  # still busy
    # The restart ends (here it fails: the store's engine does not answer), and the store is free again.
    place_on_unreachable_engine(store)
    with pytest.raises(DockerUnavailable):
        job_execute(job_id=restart.pk)
    assert backups_enqueue_due() == [store.pk]
    assert BackupRun.objects.get(store=store).kind == BackupRun.Kind.SCHEDULED


def _scheduled_first_backups(store_id: int) -> list:
    import django_rq
    from rq.job import Job

    queue = django_rq.get_queue("backups")
    registry = queue.scheduled_job_registry
    jobs = [Job.fetch(job_id, connection=queue.connection) for job_id in registry.get_job_ids()]
    return [
        (job, registry.get_scheduled_time(job))
        for job in jobs
        if job.func_name == "backups.jobs.first_backup_take" and job.args == (store_id,)
    ]


def test_with_a_delay_the_first_backup_waits_on_the_backups_scheduler_then_a_worker_queues_it(
    live_store_record, django_capture_on_commit_callbacks, settings
):
    """Production's FIRST_BACKUP_DELAY_SECONDS: going live queues no backup (the store is free at once, and a
    burst of new stores is provisioned without their backups' load); the backups queue's scheduler holds the
    request, and a real worker with the scheduler queues the backup once it is due."""
    import time

    import django_rq
    from rq import SimpleWorker

    settings.FIRST_BACKUP_DELAY_SECONDS = 1
    store = live_store_record
    went_live = time.time()
    [line] = go_live(store, django_capture_on_commit_callbacks)
    assert line.startswith("first backup due at ") and "(1 s after going live)" in line
    assert not BackupRun.objects.filter(store=store).exists()
    [(job, due)] = _scheduled_first_backups(store.pk)
    assert went_live <= due.timestamp() <= time.time() + 1.5

    time.sleep(max(0.0, due.timestamp() - time.time()) + 0.2)
    # A SimpleWorker (no fork: it sees this test's data) with the scheduler, as every production worker runs.
    django_rq.get_worker("backups", worker_class=SimpleWorker).work(burst=True, with_scheduler=True)
    [run] = BackupRun.objects.filter(store=store)
    assert (run.kind, run.status) == (BackupRun.Kind.SCHEDULED, RunStatus.QUEUED)
    assert _scheduled_first_backups(store.pk) == []


def test_a_delayed_first_backup_is_not_taken_twice_nor_of_a_store_no_longer_active(live_store_record):
    """By the time it is due the scheduled run (or the owner) may have backed the store up, or it may have been
    suspended: nothing more is queued, and nothing fails."""
    from backups.services.backup import backup_enqueue, first_backup_take

    store = live_store_record
    with transaction.atomic():
        taken = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    assert first_backup_take(store_id=store.pk) is None
    assert list(BackupRun.objects.filter(store=store)) == [taken]

    BackupRun.objects.filter(pk=taken.pk).update(status=RunStatus.FAILED)  # a failed one is no backup
    ProvisioningJob.objects.filter(pk=taken.job_id).update(status=ProvisioningJob.Status.FAILED)
    store_transition(store_id=store.pk, to=Store.Status.SUSPENDED, note="unpaid")
    assert first_backup_take(store_id=store.pk) is None
    assert BackupRun.objects.filter(store=store).count() == 1

    store_transition(store_id=store.pk, to=Store.Status.ACTIVE, note="paid")
    run = first_backup_take(store_id=store.pk)
    assert (run.kind, run.status) == (BackupRun.Kind.SCHEDULED, RunStatus.QUEUED)
    assert first_backup_take(store_id=store.pk) is None
