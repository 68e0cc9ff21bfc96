"""Rollouts and the images stores record, without Docker: batching, skipped stores, the pause on a failure (an
update that really runs and fails: its store's engine or port does not answer), resume, cancel, the admin
form's refusals, and the store's history. The updates themselves on the real engine: tests/test_updates.py."""

import importlib

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.urls import reverse

from provisioning.exceptions import DockerUnavailable
from provisioning.models import ProvisioningJob, Rollout, RolloutStore, StoreImage, StoreUpdate, UpdateStatus
from provisioning.rollouts import rollout_advance, rollout_cancel, rollout_create, rollout_resume
from provisioning.services import job_enqueue, job_execute
from provisioning.stacks import stack_for
from provisioning.store_images import store_image_set, store_images_record
from provisioning.updates import AlreadyOnImage, store_update_request
from stores.exceptions import InvalidTransition
from stores.models import Store
from stores.selectors import store_history
from tests.plugins.factories import UNREACHABLE_ENGINE

pytestmark = pytest.mark.django_db
NEW = "shophosting/wordpress-official:6.5"
T = RolloutStore.Status


def statuses(rollout: Rollout) -> list[str]:
    return list(rollout.targets.order_by("position").values_list("status", flat=True))


def test_stores_record_their_images_so_a_new_default_reaches_new_stores_only(store_in_status, settings):
    old = store_in_status("active")
    recorded = store_images_record(store_id=old.pk)
    assert recorded["web"] == settings.STORE_IMAGES["woocommerce"]["web"]
    assert set(recorded) == {"db", "cache", "web", "phpmyadmin"}  # every role, phpMyAdmin too
    settings.STORE_IMAGES = {**settings.STORE_IMAGES, "woocommerce": {**settings.STORE_IMAGES["woocommerce"]}}
    settings.STORE_IMAGES["woocommerce"]["web"] = NEW
    new = store_in_status("active")
    assert stack_for(new).image("web") == NEW  # nothing recorded yet: the default of the day
    assert store_images_record(store_id=new.pk)["web"] == NEW
    assert stack_for(old).image("web") != NEW  # the old store keeps what it runs
    # An update changes one store's record, and only that store's.
    store_image_set(store_id=old.pk, role="web", image="shophosting/wordpress:7")
    assert stack_for(old).image("web") == "shophosting/wordpress:7"
    assert stack_for(new).image("web") == NEW
    # A retried provisioning (the store was never live) takes the defaults of the day, so a retry after staff
    # fixed a bad image setting starts from the fixed one (tests/test_provisioning.py retries one for real).
    settings.STORE_IMAGES["woocommerce"]["web"] = "shophosting/wordpress:fixed"
    assert store_images_record(store_id=new.pk)["web"] == "shophosting/wordpress:fixed"
    assert stack_for(new).image("web") == "shophosting/wordpress:fixed"


def test_the_data_migration_records_what_existing_stores_run(store_in_status, settings):
    live, deleted = store_in_status("active"), store_in_status("deleted")
    migration = importlib.import_module("provisioning.migrations.0007_store_images_recorded")
    migration.record(apps, None)
    assert (
        dict(StoreImage.objects.filter(store=live).values_list("role", "image")) == settings.STORE_IMAGES["woocommerce"]
    )
    assert not StoreImage.objects.filter(store=deleted).exists()


def test_an_update_is_refused_for_a_store_that_is_not_live_or_already_on_the_image(store_in_status):
    suspended, live = store_in_status("suspended"), store_in_status("active")
    with pytest.raises(InvalidTransition):
        store_update_request(store_id=suspended.pk, image=NEW)
    with pytest.raises(AlreadyOnImage, match="already runs"):
        store_update_request(store_id=live.pk, image=stack_for(live).image("web"))
    assert not ProvisioningJob.objects.exists()  # the refused request left no job behind


def test_a_rollout_skips_busy_and_stopped_stores_with_the_reason_and_queues_its_batches_in_turn(
    store_in_status, django_capture_on_commit_callbacks
):
    suspended, busy, first, second = (store_in_status(s) for s in ("suspended", "active", "active", "active"))
    job_enqueue(store_id=busy.pk, kind=ProvisioningJob.Kind.RESTART)  # busy when its turn comes
    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollout_create(
            platform="woocommerce",
            image=NEW,
            batch_size=2,
            store_ids=[suspended.pk, busy.pk, first.pk, second.pk],
        )
    # The first batch (the suspended and the busy store) was skipped whole, so the next one was queued.
    assert statuses(rollout) == [T.SKIPPED, T.SKIPPED, T.UPDATING, T.UPDATING]
    reasons = list(rollout.targets.order_by("position").values_list("reason", flat=True))
    assert "was suspended when its turn came" in reasons[0]
    assert "This store is busy: restart" in reasons[1]
    assert StoreUpdate.objects.filter(store__in=[first, second], to_image=NEW).count() == 2
    # A batch under way is left alone.
    rollout_advance(rollout_id=rollout.pk)
    assert statuses(rollout) == [T.SKIPPED, T.SKIPPED, T.UPDATING, T.UPDATING]


def test_the_first_failure_pauses_the_rollout_and_staff_resume_or_cancel_it(
    client, store_in_status, place_on_unreachable_engine, django_capture_on_commit_callbacks
):
    """The update really runs and fails at its first step (the store's engine does not answer): nothing was
    changed, the store stays active, the history says so, and no further batch starts until staff say."""
    stores = [store_in_status("active") for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollout_create(
            platform="woocommerce", image=NEW, batch_size=1, store_ids=[store.pk for store in stores]
        )
    assert statuses(rollout) == [T.UPDATING, T.PENDING, T.PENDING]
    update = StoreUpdate.objects.get(store=stores[0])
    place_on_unreachable_engine(stores[0])  # now: the rollout checked its image on the stores' engines first
    assert [step.name for step in update.job.steps.all()][-1] == "put_back"

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(DockerUnavailable):
        job_execute(job_id=update.job_id)
    update.refresh_from_db()
    rollout.refresh_from_db()
    assert update.status == UpdateStatus.FAILED and UNREACHABLE_ENGINE in update.error
    assert update.job.steps.get(name="put_back").status == "succeeded"  # it found nothing to put back
    assert Store.objects.get(pk=stores[0].pk).status == Store.Status.ACTIVE
    assert rollout.status == Rollout.Status.PAUSED and f"{stores[0].domain} failed" in rollout.status_note
    assert statuses(rollout) == [T.FAILED, T.PENDING, T.PENDING]  # no new batch
    assert store_history(stores[0])[0].message.startswith("Update to wordpress-official:6.5 did not start;")
    client.force_login(stores[0].customer)  # the store's history on its page, in plain words only
    page = client.get(reverse("stores:detail", args=[stores[0].pk])).content.decode()
    assert "Update to wordpress-official:6.5 did not start; your store stays on" in page
    assert UNREACHABLE_ENGINE not in page and "DockerUnavailable" not in page

    with django_capture_on_commit_callbacks(execute=True):
        rollout_resume(rollout_id=rollout.pk)
    assert statuses(rollout) == [T.FAILED, T.UPDATING, T.PENDING]
    with pytest.raises(InvalidTransition):
        rollout_resume(rollout_id=rollout.pk)  # it runs already

    rollout_cancel(rollout_id=rollout.pk)
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.CANCELLED
    assert statuses(rollout) == [T.FAILED, T.UPDATING, T.CANCELLED]  # the update under way finishes
    assert list(rollout.events.values_list("new_status", flat=True)) == ["running", "paused", "running", "cancelled"]


def test_a_rollout_completes_once_every_store_had_its_turn(store_in_status, django_capture_on_commit_callbacks):
    store = store_in_status("active")
    store_image_set(store_id=store.pk, role="web", image=NEW)
    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollout_create(platform="woocommerce", image=NEW, batch_size=3, store_ids=[store.pk])
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.COMPLETED
    assert statuses(rollout) == [T.SKIPPED]
    assert "already runs" in rollout.targets.get().reason


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"image": NEW, "batch_size": 2}, "Choose the stores to update, or all stores of WooCommerce."),
        ({"image": "Not an image!", "batch_size": 2, "all_stores": "on"}, "is not an image reference"),
        ({"image": NEW, "batch_size": 0, "all_stores": "on"}, "greater than or equal to 1"),
        ({"image": NEW, "batch_size": 2, "all_stores": "on", "stores": "SELF"}, "not both"),
        ({"image": NEW, "batch_size": 2, "all_stores": "on", "platform": "magento"}, "No Magento 2 store"),
    ],
)
def test_the_rollout_form_refuses_bad_input_with_the_reason(client, staff_user, recorded_active_store, data, error):
    client.force_login(staff_user)
    form = {"platform": "woocommerce", **data}
    if form.get("stores") == "SELF":
        form["stores"] = str(recorded_active_store.pk)
    response = client.post(reverse("admin:provisioning_rollout_add"), form)
    assert response.status_code == 200
    assert error in response.content.decode().replace("&#x27;", "'")
    assert not Rollout.objects.exists()


def test_the_rollout_form_refuses_an_image_it_cannot_check_on_the_stores_engine(
    client, staff_user, recorded_active_store, place_on_unreachable_engine
):
    place_on_unreachable_engine(recorded_active_store)
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:provisioning_rollout_add"),
        {"platform": "woocommerce", "image": NEW, "batch_size": 2, "stores": [recorded_active_store.pk]},
    )
    assert "does not answer" in response.content.decode()
    assert not Rollout.objects.exists()


def test_rollout_create_refuses_stores_of_another_platform(store_in_status):
    from billing.models import Plan

    magento = store_in_status("active", plan=Plan.objects.get(slug="magento-commerce-core"))
    with pytest.raises(ValidationError, match="Not WooCommerce stores"):
        rollout_create(platform="woocommerce", image=NEW, batch_size=1, store_ids=[magento.pk])


def test_the_admin_shows_a_rollouts_progress_and_links_each_store_to_its_job(
    client, staff_user, store_in_status, django_capture_on_commit_callbacks
):
    stores = [store_in_status("active") for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollout_create(
            platform="woocommerce", image=NEW, batch_size=1, store_ids=[store.pk for store in stores]
        )
    client.force_login(staff_user)
    listing = client.get(reverse("admin:provisioning_rollout_changelist")).content.decode()
    assert "0 done, 0 failed, 0 skipped, 3 pending" in listing
    page = client.get(reverse("admin:provisioning_rollout_change", args=[rollout.pk])).content.decode()
    job = StoreUpdate.objects.get(store=stores[0]).job
    assert reverse("admin:provisioning_provisioningjob_change", args=[job.pk]) in page
    assert reverse("admin:stores_store_change", args=[stores[2].pk]) in page
