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
