"""A move whose worker dies in the switch window (provisioning/undo.py): the reaper queues the move's undo as a
job of its own, which brings the store back on its own host and clears the target; the move can then be
asked for again and succeeds.

A real `manage.py rqworker` process runs the move and is killed, so this test writes its data for real
(the `committed` fixture, as in test_provisioning_workers) and registers the second engine's host itself."""

import pytest
from django.db import transaction

from provisioning.models import JobStep, ProvisioningJob
from provisioning.move_models import StoreMove
from provisioning.moves import store_move_request
from provisioning.services import job_retry, job_undo_enqueue, jobs_reap_stale
from stores.exceptions import InvalidTransition
from stores.models import Host, Store
from tests.plugins.engines import SecondEngine
from tests.test_fleet_move import NOTHING, front_status, post_insert, posts, sql, store_objects
from tests.test_provisioning import NGINX_PORT, fetch_until
from tests.test_provisioning_workers import (  # noqa: F401 - committed and start_worker are fixtures
    committed,
    kill_with_work_horse,
    start_worker,
    wait_for,
)
from tests.test_store_operations import live_store_with_a_backup, table_locked

DUMP_WAITING = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'Waiting for table metadata lock'"


@pytest.mark.django_db
def test_a_move_reaped_before_its_switch_gets_an_undo_job_and_one_reaped_in_the_switch_does_not(store_in_status):
    """The move kind's opt-in (moves._undo_after_reap), on records alone; the real thing follows. (This module's
    first database test also has pytest-django set up the test database the committed fixture needs.)"""
    from django.utils import timezone

    from tests.test_fleet import _hosts

    home, target = _hosts("reap-home", "reap-target")
    outcomes = {}
    for n, running in enumerate(("final_sync", "switch")):
        store = store_in_status("active")
        Store.objects.filter(pk=store.pk).update(host=home, port=home.port_range_start + n)
        job = ProvisioningJob.objects.create(
            store=store, kind=ProvisioningJob.Kind.MOVE, status="running", started_at=timezone.now()
        )
        for order, name in enumerate(["final_sync", "switch", "put_back"]):
            status = JobStep.Status.RUNNING if name == running else JobStep.Status.PENDING
            JobStep.objects.create(job=job, name=name, title=name, order=order, status=status)
        StoreMove.objects.create(
            store=store,
            job=job,
            source_host=home,
            source_port=home.port_range_start + n,
            target_host=target,
            target_port=target.port_range_start + n,
            status=StoreMove.Status.RUNNING,
        )
        assert jobs_reap_stale() == [job.pk]
        outcomes[running] = ProvisioningJob.objects.filter(undo_of=job).exists()
        assert StoreMove.objects.get(job=job).status == StoreMove.Status.FAILED
    assert outcomes == {"final_sync": True, "switch": False}


@pytest.fixture
def committed_second_host(committed, second_engine: SecondEngine, settings):  # noqa: F811
    """register() -> the second engine as a committed, checked host; removed with what it holds afterwards."""
    from provisioning import docker_client

    made: list[Host] = []

    def register() -> Host:
        made.append(second_engine.host_register(name="engine2-reaped", port_range_start=21100))
        return made[-1]

    yield register
    for host in made:
        # The committed fixture deletes the stores afterwards; their moves protect the host, so they go first.
        StoreMove.objects.filter(target_host=host).delete()
        Store.objects.filter(host=host).update(host=None, port=None)
        host.delete()
    if second_engine.answers():
        docker_client.labelled_objects_remove(
            label=f"shophosting.env={settings.STORE_OBJECT_PREFIX}", base_url=second_engine.engine()
        )


@pytest.mark.docker
def test_a_move_whose_worker_dies_in_the_switch_window_is_put_back_by_an_undo_job_and_can_move_again(
    committed,  # noqa: F811
    committed_second_host,
    store_images,
    clean_test_stores,
    start_worker,  # noqa: F811
    run_provisioning_worker,
    run_backups_worker,
):
    # A live store on the platform's engine (the second host is registered only after it is placed).
    store, _ = live_store_with_a_backup(
        committed, run_provisioning_worker, run_backups_worker, "reaped-move.test", site_title="Paused Shop"
    )
    store = Store.objects.select_related("host").get(pk=store.pk)
    home, home_port = store.host, store.port
    assert fetch_until(NGINX_PORT, store.domain, "Paused Shop").status == 200
    post_insert(store, "Written before the move")
    remote = committed_second_host()

    with transaction.atomic():  # committed: on commit, the move is enqueued for real
        move = store_move_request(store_id=store.pk, host_id=remote.pk)
    worker = start_worker("provisioning")
    wait_for(
        lambda: JobStep.objects.filter(job_id=move.job_id, name="copy", status=JobStep.Status.SUCCEEDED).exists(),
        120,
        "the move's first copy",
    )
    # The final sync's dump waits on this lock: the worker is killed inside the switch window, with the app
    # stopped and nginx showing the maintenance page.
    with table_locked(store, "wp_options"):
        wait_for(
            lambda: StoreMove.objects.filter(pk=move.pk, downtime_started_at__isnull=False).exists(),
            120,
            "the final sync to pause the store",
        )
        # The maintenance page is up and the app stopped once the final dump waits on the lock.
        wait_for(lambda: int(sql(store, DUMP_WAITING)) > 0, 120, "the final sync's dump to wait on the lock")
        assert JobStep.objects.get(job_id=move.job_id, name="final_sync").status == JobStep.Status.RUNNING
        kill_with_work_horse(worker)
        assert front_status(store.domain) == 503  # paused, and nobody left to end it
        reaped: list[int] = []
        wait_for(lambda: reaped.extend(jobs_reap_stale()) or reaped, 30, "the reaper to fail the move")

    job = ProvisioningJob.objects.get(pk=move.job_id)
    assert reaped == [job.pk] and job.status == ProvisioningJob.Status.FAILED and job.reaped_at is not None
    undo = ProvisioningJob.objects.get(undo_of=job)
    assert undo.kind == ProvisioningJob.Kind.UNDO and undo.status == ProvisioningJob.Status.QUEUED
    assert f"job #{undo.pk} runs it" in job.steps.get(name="put_back").output
    move.refresh_from_db()
    assert move.status == StoreMove.Status.FAILED
    assert "being put back" in store.events.order_by("pk").last().note

    run_provisioning_worker()  # the undo job, queued by the reaper's commit

    undo.refresh_from_db()
    assert undo.status == ProvisioningJob.Status.SUCCEEDED, undo.error
    fresh = Store.objects.select_related("host").get(pk=store.pk)
    assert (fresh.host, fresh.port, fresh.status) == (home, home_port, Store.Status.ACTIVE)
    assert fresh.move_host is None and fresh.move_port is None  # the target's place is released
    assert store_objects(fresh, remote) == NOTHING
    assert store_objects(fresh, home)["containers"] == sorted(f"{fresh.slug}-{r}" for r in ("cache", "db", "web"))
    assert fetch_until(NGINX_PORT, fresh.domain, "Paused Shop").status == 200
    assert posts(fresh)[-1] == "Written before the move"
    move.refresh_from_db()
    assert move.downtime_ended_at is not None and move.downtime_seconds > 0
    log = "\n".join(undo.steps.get().log_lines.values_list("message", flat=True))
    assert "stopped at “Pause the store and copy what changed”" in log and "answers on its own host again" in log
    assert "was put back: the store is on" in "\n".join(fresh.events.values_list("note", flat=True))

    # The move asked for again (the failed job's retry) goes through; after it, the old undo is refused.
    again = job_retry(job_id=job.pk)
    run_provisioning_worker()
    moved = StoreMove.objects.get(job_id=again.pk)
    assert moved.status == StoreMove.Status.MOVED, ProvisioningJob.objects.get(pk=again.pk).error
    fresh = Store.objects.select_related("host").get(pk=store.pk)
    assert fresh.host == remote and posts(fresh)[-1] == "Written before the move"
    assert fetch_until(NGINX_PORT, fresh.domain, "Paused Shop").status == 200
    with pytest.raises(InvalidTransition, match=f"job #{undo.pk} put back what job #{job.pk} changed already"):
        job_undo_enqueue(job_id=job.pk)
