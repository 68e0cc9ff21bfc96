"""One operation at a time per store, whatever app runs it: provisioning jobs of every kind, backups, restores
and backup verification refuse to start beside each other, with a clear message for the customer and staff.
Recorded runs that lost their enqueue (a killed process, a Redis that lost data) are enqueued again, and
runs whose worker died are failed, so nothing holds a store for ever."""

from datetime import timedelta

import django_rq
import pytest
from django.urls import reverse
from django.utils import timezone

from backups import services as backup_services
from backups.models import BackupRun, RestoreRun, RunStatus
from provisioning.exceptions import JobConflict
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue, jobs_requeue_lost
from shophosting.queues import rq_job_pending
from stores.exceptions import StoreBusy
from stores.models import Store
from stores.operations import store_lease, store_operation_active
from stores.services import store_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def active_store(user_factory, woo_plan):
    """A store recorded as live (no containers: every check here happens before Docker is asked anything)."""
    store = store_create(customer=user_factory(email="busy@example.com"), plan=woo_plan, domain="busy.example.com")
    Store.objects.filter(pk=store.pk).update(status=Store.Status.ACTIVE)
    store.refresh_from_db()
    return store


def test_a_queued_restore_refuses_every_provisioning_job_with_a_clear_message(
    active_store, client, staff_user, django_capture_on_commit_callbacks
):
    store = active_store
    RestoreRun.objects.create(store=store, snapshot_id="a" * 64, scope=RestoreRun.Scope.ALL)

    for kind in ProvisioningJob.Kind.values:
        with pytest.raises(JobConflict, match="A restore of this store is already queued"):
            job_enqueue(store_id=store.pk, kind=kind)
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE and not store.jobs.exists()  # a refused teardown changed nothing

    # The customer's restart says why, in words.
    client.force_login(store.customer)
    page = client.post(reverse("stores:restart", args=[store.pk]), follow=True).content.decode()
    assert "The store cannot be restarted now: A restore of this store is already queued" in page
    # Staff: the suspend action and the delete page refuse with the same reason, and nothing is queued.
    client.force_login(staff_user)
    changelist = reverse("admin:stores_store_changelist")
    page = client.post(changelist, {"action": "suspend", "_selected_action": [store.pk]}, follow=True)
    assert "Busy.example.com: A restore of this store is already queued" in page.content.decode()
    delete = reverse("admin:stores_store_delete", args=[store.pk])
    page = client.post(delete, {"confirm": store.domain}, follow=True).content.decode()
    assert "Not deleted: busy.example.com: A restore of this store is already queued" in page
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE and not store.jobs.exists()


def test_a_provisioning_job_refuses_backups_and_a_backup_refuses_jobs(active_store, client):
    store = active_store
    job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART)

    with pytest.raises(backup_services.BackupConflict, match="already has an active job"):
        backup_services.backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    client.force_login(store.customer)
    page = client.post(reverse("backups:create", args=[store.pk]), follow=True).content.decode()
    assert f"already has an active job (#{job.pk}, restart, queued since" in page
    assert not store.backup_runs.exists()

    ProvisioningJob.objects.filter(pk=job.pk).update(status=ProvisioningJob.Status.SUCCEEDED)
    backup_services.backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    with pytest.raises(JobConflict, match="A backup of this store is already queued"):
        job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.SUSPEND)


def test_verification_holds_the_store_and_waits_for_other_operations(active_store):
    store = active_store
    with store_lease(store_id=store.pk, holder="A check that a backup restores", seconds=600):
        with pytest.raises(JobConflict, match="A check that a backup restores is running on this store"):
            job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.TEARDOWN)
        with pytest.raises(backup_services.BackupConflict, match="A check that a backup restores is running"):
            backup_services.backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    assert store_operation_active(store_id=store.pk) is None  # released on the way out

    # A lease whose worker died expires by itself.
    Store.objects.filter(pk=store.pk).update(lease_holder="A check", lease_expires_at=timezone.now())
    job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART)

    # Verification does not start while a job runs: the snapshot is neither verified nor failed.
    snapshot = BackupRun.objects.create(store=store, kind="manual", status="succeeded", snapshot_id="b" * 64)
    with pytest.raises(StoreBusy, match="already has an active job"):
        with store_lease(store_id=store.pk, holder="A check that a backup restores", seconds=600):
            pass
    assert backup_services.backups_verify(store_id=store.pk) == []
    snapshot.refresh_from_db()
    assert snapshot.verified_at is None and snapshot.verify_error == ""
    assert store_operation_active(store_id=store.pk).startswith(f"This store already has an active job (#{job.pk}")


def test_runs_and_jobs_that_lost_their_enqueue_run_and_dead_workers_release_the_store(active_store):
    """In a test no transaction commits, so on_commit never enqueues: exactly the state a web process
    killed between its commit and its enqueue leaves behind."""
    store = active_store
    later = timezone.now() + timedelta(minutes=2)
    job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART)
    restore = backup_services.RestoreRun.objects.create(store=store, snapshot_id="c" * 64, scope="db")
    queues = [django_rq.get_queue(name) for name in ("provisioning", "backups")]
    try:
        assert not rq_job_pending(queue="provisioning", job_id=f"provisioning-job-{job.pk}")
        assert jobs_requeue_lost(now=timezone.now()) == []  # within the grace period: its enqueue may be on its way
        assert jobs_requeue_lost(now=later) == [job.pk]
        assert rq_job_pending(queue="provisioning", job_id=f"provisioning-job-{job.pk}")
        assert jobs_requeue_lost(now=later) == []  # enqueued once, not twice

        assert backup_services.runs_recover(now=later)["requeued"] == [restore.pk]
        assert rq_job_pending(queue="backups", job_id=f"restore-{restore.pk}")
        assert backup_services.runs_recover(now=later)["requeued"] == []

        # A restore whose worker died, and the pre-restore backup it left queued, are failed after the timeout.
        pre = BackupRun.objects.create(store=store, kind=BackupRun.Kind.PRE_RESTORE)
        long_ago = timezone.now() - timedelta(days=1)
        RestoreRun.objects.filter(pk=restore.pk).update(
            status=RunStatus.RUNNING, started_at=long_ago, pre_restore_backup=pre
        )
        BackupRun.objects.filter(pk=pre.pk).update(created_at=long_ago)
        ProvisioningJob.objects.filter(pk=job.pk).update(status=ProvisioningJob.Status.SUCCEEDED)
        assert store_operation_active(store_id=store.pk) is not None
        assert sorted(backup_services.runs_recover(now=later)["reaped"]) == sorted([pre.pk, restore.pk])
        restore.refresh_from_db()
        assert restore.status == RunStatus.FAILED and "timeout" in restore.error
        assert store_operation_active(store_id=store.pk) is None
    finally:
        for queue in queues:
            queue.empty()
