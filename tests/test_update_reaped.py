"""An update whose worker dies in its upgrade (provisioning/undo.py, provisioning/updates.py): the reaper queues
the update's put-back as an undo job, which puts the store back on its old image with its data from the
pre-update backup, live again; the merchant reads that the update was interrupted and undone.

The update is a rollout's: its store reads rolled back there too, and the rollout stays paused.
A real `manage.py rqworker` process runs the update and is killed while the new version's upgrade hangs (an
image built here whose wp-upgrade.php sleeps), so this test writes its data for real (`committed`)."""

import textwrap

import pytest
from django.db import transaction
from django.utils import timezone

from provisioning import docker_client
from provisioning.images import image_tags
from provisioning.models import JobStep, ProvisioningJob, Rollout, RolloutStore, StoreUpdate, UpdateStatus
from provisioning.rollouts import rollout_create
from provisioning.services import jobs_reap_stale
from stores.selectors import store_history
from tests.test_backups import insert_post, posts, sql
from tests.test_fleet_move import front_status
from tests.test_provisioning import NGINX_PORT, fetch_until
from tests.test_provisioning_workers import (  # noqa: F401 - committed and start_worker are fixtures
    committed,
    kill_with_work_horse,
    start_worker,
    wait_for,
)
from tests.test_store_operations import live_store_with_a_backup

HANGING = "shophosting/wordpress-update-hangs:test"
HANGING_UPGRADE = "<?php sleep(600);\n"  # the worker is killed while this runs


@pytest.mark.django_db
def test_a_reaped_update_is_put_back_by_an_undo_job_only_between_its_maintenance_page_and_its_route(
    store_in_status,
):
    """The update kind's opt-in on records alone; the real thing follows. (This module's first database test
    also has pytest-django set up the test database the committed fixture needs.)"""
    from provisioning.updates import undo_after_reap

    steps = ["precheck", "maintenance", "pre_backup", "recreate", "upgrade", "check", "route", "put_back"]
    outcomes = {}
    for running, status in [
        ("precheck", UpdateStatus.FAILED),  # nothing changed yet
        ("upgrade", UpdateStatus.FAILED),
        ("route", UpdateStatus.FAILED),  # the new version may take orders
        ("upgrade", UpdateStatus.ROLLED_BACK),  # its worker put it back, then died before failing the job
    ]:
        store = store_in_status("active")
        job = ProvisioningJob.objects.create(
            store=store, kind=ProvisioningJob.Kind.UPDATE, status="failed", started_at=timezone.now()
        )
        reached = steps.index(running)
        for order, name in enumerate(steps):
            step_status = JobStep.Status.SUCCEEDED if order < reached else JobStep.Status.SKIPPED
            if name == running:
                step_status = JobStep.Status.FAILED
            JobStep.objects.create(job=job, name=name, title=name, order=order, status=step_status)
        StoreUpdate.objects.create(store=store, job=job, from_image="old", to_image="new", status=status)
        outcomes[(running, status)] = undo_after_reap(job.pk)
    assert outcomes == {
        ("precheck", UpdateStatus.FAILED): False,
        ("upgrade", UpdateStatus.FAILED): True,
        ("route", UpdateStatus.FAILED): False,
        ("upgrade", UpdateStatus.ROLLED_BACK): False,
    }


@pytest.fixture(scope="module")
def hanging_image(docker_engine, store_images, tmp_path_factory):
    base, _ = image_tags("wordpress")
    context = tmp_path_factory.mktemp("hangs")
    (context / "wp-upgrade.php").write_text(HANGING_UPGRADE)
    (context / "Dockerfile").write_text(
        textwrap.dedent(f"""\
            FROM {base}
            COPY wp-upgrade.php /usr/local/share/shophosting/wp-upgrade.php
            """)
    )
    docker_client.image_build(path=str(context), tags=[HANGING])
    yield HANGING
    docker_client.client().images.remove(HANGING, force=True)


@pytest.mark.docker
def test_an_update_whose_worker_dies_in_its_upgrade_is_put_back_on_the_old_image_with_its_data(
    committed,  # noqa: F811
    hanging_image,
    clean_test_stores,
    restic_repository,
    start_worker,  # noqa: F811
    run_provisioning_worker,
    run_backups_worker,
):
    store, _ = live_store_with_a_backup(
        committed, run_provisioning_worker, run_backups_worker, "reaped-update.test", site_title="Held Shop"
    )
    old_image = docker_client.container_image(name=f"{store.slug}-web")
    insert_post(store, "Written before the update")
    blogname = sql(store, "SELECT option_value FROM wp_options WHERE option_name='blogname'")

    with transaction.atomic():  # committed: on commit, the rollout's update is enqueued for real
        rollout = rollout_create(platform="woocommerce", image=hanging_image, batch_size=1, store_ids=[store.pk])
    update = StoreUpdate.objects.get(store=store, to_image=hanging_image)
    worker = start_worker("provisioning")
    wait_for(
        lambda: JobStep.objects.filter(job_id=update.job_id, name="upgrade", status=JobStep.Status.RUNNING).exists(),
        180,
        "the update to reach its upgrade (after its backup and the new container's start)",
    )
    kill_with_work_horse(worker)
    assert front_status(store.domain) == 503  # behind the maintenance page, and nobody left to end it
    reaped: list[int] = []
    wait_for(lambda: reaped.extend(jobs_reap_stale()) or reaped, 30, "the reaper to fail the update")

    job = ProvisioningJob.objects.get(pk=update.job_id)
    assert reaped == [job.pk] and job.reaped_at is not None
    undo = ProvisioningJob.objects.get(undo_of=job)
    update.refresh_from_db()
    assert update.status == UpdateStatus.FAILED  # until the undo job has put it back
    assert "could not be put back" in store_history(store)[0].message
    assert rollout.targets.get().status == RolloutStore.Status.FAILED

    run_provisioning_worker()  # the undo job, queued by the reaper's commit

    undo.refresh_from_db()
    assert undo.status == ProvisioningJob.Status.SUCCEEDED, undo.error
    log = "\n".join(undo.steps.get().log_lines.values_list("message", flat=True))
    assert "stopped at “Upgrade the store's database”" in log
    assert f"the store runs {old_image} again, with its data as before the update" in log
    update = StoreUpdate.objects.get(pk=update.pk)
    assert update.status == UpdateStatus.ROLLED_BACK
    assert docker_client.container_image(name=f"{store.slug}-web") == old_image
    assert store.images.get(role="web").image == old_image
    assert docker_client.container_image(name=f"{store.slug}-web-previous") is None
    assert fetch_until(NGINX_PORT, store.domain, "Held Shop").status == 200
    assert "Written before the update" in posts(store)
    assert sql(store, "SELECT option_value FROM wp_options WHERE option_name='blogname'") == blogname
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.PAUSED  # staff resume or cancel it
    assert rollout.targets.get().status == RolloutStore.Status.ROLLED_BACK
    assert store_history(store)[0].message == (
        f"Update to wordpress-update-hangs:test was interrupted; your store was put back on "
        f"{old_image.rpartition('/')[2]}."
    )
