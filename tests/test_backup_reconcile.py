"""The snapshot records against a real restic repository: the reconcile job (run by a real RQ worker) records
snapshots made outside the platform and marks forgotten ones, snapshots from before tags were namespaced are
adopted, and installations sharing one repository never list or prune each other's snapshots."""

import datetime as dt
import json
import shutil

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from backups import restic
from backups.models import BackupRun, RunStatus
from backups.services.reconcile import snapshots_reconcile
from backups.services.restore import snapshot_for_store
from backups.services.retention import backups_prune

pytestmark = pytest.mark.django_db


def snapshot(tags: list[str], *, time: dt.datetime | None = None) -> str:
    """A small snapshot made straight with restic (the platform's adapter), with no BackupRun recording it."""
    staging = settings.BASE_DIR / "var" / "test" / "reconcile"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "db.sql").write_text(f"-- {tags} {time}\n")
    try:
        return restic.backup(["db.sql"], cwd=staging, tags=tags, time=time).snapshot_id
    finally:
        shutil.rmtree(staging)


def bare_snapshot(tags: list[str]) -> str:
    """A snapshot as the platform wrote them before tags were namespaced: the bare tags only."""
    staging = settings.BASE_DIR / "var" / "test" / "reconcile-legacy"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "db.sql").write_text(f"-- legacy {tags}\n")
    try:
        output = restic.run(["backup", "--json", *[f"--tag={t}" for t in tags], "db.sql"], cwd=staging)
    finally:
        shutil.rmtree(staging)
    short = json.loads(output.splitlines()[-1])["snapshot_id"]
    [found] = restic.snapshots_by_id([short])
    return found["id"]


def test_the_reconcile_job_records_snapshots_made_outside_the_platform_and_marks_forgotten_ones(
    recorded_active_store, client, restic_repository, run_backups_worker
):
    store = recorded_active_store
    tags = [f"store-{store.pk}", f"customer-{store.customer_id}"]
    kept = snapshot([*tags, "manual"])
    BackupRun.objects.create(
        store=store, kind="manual", status=RunStatus.SUCCEEDED, snapshot_id=kept, finished_at=timezone.now()
    )
    forgotten_by_hand = snapshot([*tags, "manual"])
    gone = BackupRun.objects.create(
        store=store,
        kind="manual",
        status=RunStatus.SUCCEEDED,
        snapshot_id=forgotten_by_hand,
        finished_at=timezone.now(),
    )
    restic.run(["forget", forgotten_by_hand])  # removed outside the platform's bookkeeping
    made_outside = snapshot([*tags, "scheduled"])
    other_customers = snapshot([f"store-{store.pk}", "customer-999999", "manual"])  # a forged or stale tag

    call_command("backups_reconcile")  # queues the job, as the hourly cron entry does
    run_backups_worker()

    found = BackupRun.objects.get(snapshot_id=made_outside)
    assert (found.store, found.kind, found.status) == (store, "scheduled", RunStatus.SUCCEEDED)
    assert found.finished_at is not None and "found in the repository" in found.events.get().note
    gone.refresh_from_db()
    assert gone.forgotten_at is not None
    assert BackupRun.objects.get(snapshot_id=kept).forgotten_at is None
    assert not BackupRun.objects.filter(snapshot_id=other_customers).exists()
    client.force_login(store.customer)
    page = client.get(reverse("backups:list", args=[store.pk])).content.decode()
    assert made_outside in page and kept in page and forgotten_by_hand not in page

    # A second run finds nothing more to do.
    again = snapshots_reconcile()
    assert again["recorded"] == again["forgotten"] == again["adopted"] == []


def test_snapshots_from_before_namespacing_are_adopted_only_when_this_installation_recorded_them(
    recorded_active_store, restic_repository
):
    store = recorded_active_store
    tags = [f"store-{store.pk}", f"customer-{store.customer_id}", "scheduled"]
    ours = bare_snapshot(tags)
    run = BackupRun.objects.create(
        store=store, kind="scheduled", status=RunStatus.SUCCEEDED, snapshot_id=ours, finished_at=timezone.now()
    )
    unknown = bare_snapshot(tags)  # no record here: perhaps another installation's; left alone

    changes = snapshots_reconcile()

    assert changes["adopted"] == [ours] and changes["forgotten"] == []
    run.refresh_from_db()
    assert run.forgotten_at is None and run.snapshot_id != ours  # restic rewrote it under a new id
    [adopted] = [s for s in restic.snapshots(tags=[f"store-{store.pk}"]) if s["id"] == run.snapshot_id]
    assert adopted["original"] == ours and set(tags) <= set(adopted["tags"])
    assert snapshot_for_store(store=store, snapshot_id=run.snapshot_id)["id"] == run.snapshot_id
    [left] = restic.snapshots_by_id([unknown])
    assert sorted(left["tags"]) == sorted(tags)  # untouched
    assert not BackupRun.objects.filter(snapshot_id=unknown).exists()


def test_installations_sharing_a_repository_never_list_or_prune_each_others_snapshots(
    recorded_active_store, woo_plan, restic_repository
):
    from django.test import override_settings

    store = recorded_active_store
    woo_plan.daily_backups = False  # 14 days
    woo_plan.save()
    tags = [f"store-{store.pk}", f"customer-{store.customer_id}", "scheduled"]
    now = timezone.now()
    made = {}
    for installation in ("inst-a", "inst-b"):  # the other installation has a store with the same id
        with override_settings(BACKUP_INSTALLATION_ID=installation):
            for days_ago in (40, 1):
                made[installation, days_ago] = snapshot(tags, time=now - dt.timedelta(days=days_ago))
    theirs = {made["inst-b", 40], made["inst-b", 1]}

    with override_settings(BACKUP_INSTALLATION_ID="inst-a"):
        for days_ago in (40, 1):
            BackupRun.objects.create(
                store=store, kind="scheduled", status=RunStatus.SUCCEEDED, snapshot_id=made["inst-a", days_ago]
            )
        assert {s["id"] for s in restic.snapshots()} == {made["inst-a", 40], made["inst-a", 1]}

        forgotten = backups_prune()[f"store-{store.pk}"]
        with pytest.raises(restic.ResticError, match="not this installation's"):
            restic.forget_ids(sorted(theirs))
        changes = snapshots_reconcile()

        assert forgotten == [made["inst-a", 40]]
        assert {s["id"] for s in restic.snapshots()} == {made["inst-a", 1]}
        assert not set(changes["recorded"]) & theirs
    with override_settings(BACKUP_INSTALLATION_ID="inst-b"):
        assert {s["id"] for s in restic.snapshots()} == theirs  # all of the other installation's are still there


def test_every_cron_job_gets_its_queues_timeout_and_the_restic_ones_time_enough_for_restic():
    """rq's cron scheduler enqueues on a plain Queue, whose default timeout is 180 s, not RQ_QUEUES': a
    certificate renewal or usage sample over many stores, or a system backup, was killed after 3 minutes."""
    import django_rq
    from django_rq.cron import DjangoCronScheduler

    scheduler = DjangoCronScheduler()
    scheduler.load_config_from_file("shophosting.cron")
    cron_jobs = {job.func_name.rsplit(".", 1)[-1]: job for job in scheduler.get_jobs()}
    long_running = {"backups_prune", "repository_check", "backups_verify", "snapshots_reconcile"}
    assert long_running <= set(cron_jobs) and {"stores_tls_renew", "stores_usage_sample"} <= set(cron_jobs)
    for name, cron_job in sorted(cron_jobs.items()):
        job = cron_job.enqueue(django_rq.get_connection(cron_job.queue_name))  # as the scheduler enqueues it
        try:
            assert job.timeout >= settings.RQ_QUEUES[cron_job.queue_name]["DEFAULT_TIMEOUT"], f"{name}: {job.timeout}"
            if name in long_running:
                assert job.timeout >= settings.RESTIC_TIMEOUT, f"{name}: {job.timeout} s"
        finally:
            job.delete()
