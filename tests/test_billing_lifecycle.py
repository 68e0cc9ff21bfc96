"""Dunning, plan changes and cancellation, end to end: signed webhooks in, real provisioning jobs on the real
Docker engine out, with time moved instead of waited for."""

import io
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from backups import restic
from backups.models import BackupRun, RunStatus
from billing import jobs as billing_jobs
from billing.models import Plan, Subscription
from billing.services.plans import plan_price_create
from provisioning import docker_client
from provisioning.models import ProvisioningJob
from provisioning.stacks.base import DB_ROOT_CLIENT_ENV
from stores.models import Store

pytestmark = [pytest.mark.django_db, pytest.mark.docker]
SS = Subscription.Status


def web_container(store: Store):
    return docker_client.client().containers.get(f"{store.slug}-web")


def run_jobs(capture, worker, call):
    with capture(execute=True):
        result = call()
    worker()
    return result


def test_payment_failed_then_grace_period_suspends_and_payment_recovered_resumes(
    live_subscription, stripe_api, stripe_webhook, django_capture_on_commit_callbacks, run_provisioning_worker
):
    subscription, stripe_subscription = live_subscription
    store = subscription.stores.get()
    failed = stripe_api.invoice(subscription=stripe_subscription, status="open", attempt_count=1)
    mail.outbox.clear()

    run_jobs(
        django_capture_on_commit_callbacks,
        run_provisioning_worker,
        lambda: stripe_webhook.post(stripe_api.event("invoice.payment_failed", failed)),
    )

    subscription.refresh_from_db()
    assert subscription.status == SS.PAST_DUE and subscription.past_due_since is not None
    [email] = mail.outbox
    assert email.to == ["merchant@example.com"] and "Payment failed" in email.subject
    assert failed["hosted_invoice_url"] in email.body
    assert email.alternatives and "Pay the invoice" in email.alternatives[0][0]

    with time_machine.travel(timezone.now() + timedelta(days=6, hours=23)):
        assert billing_jobs.dunning_enforce() == []  # still inside the 7-day grace period
    with time_machine.travel(timezone.now() + timedelta(days=7, hours=1)):
        with django_capture_on_commit_callbacks(execute=True):
            assert billing_jobs.dunning_enforce() == [subscription.pk]
    run_provisioning_worker()

    subscription.refresh_from_db()
    store.refresh_from_db()
    assert subscription.status == SS.SUSPENDED
    assert store.status == Store.Status.SUSPENDED
    assert web_container(store).status == "exited"
    assert "suspended" in mail.outbox[-1].subject

    paid = stripe_api.invoice(subscription=stripe_subscription, status="paid")
    run_jobs(
        django_capture_on_commit_callbacks,
        run_provisioning_worker,
        lambda: stripe_webhook.post(stripe_api.event("invoice.paid", paid)),
    )

    subscription.refresh_from_db()
    store.refresh_from_db()
    assert subscription.status == SS.ACTIVE and subscription.past_due_since is None
    assert store.status == Store.Status.ACTIVE
    assert web_container(store).status == "running"
    assert [e.new_status for e in subscription.events.order_by("pk")][-3:] == [SS.PAST_DUE, SS.SUSPENDED, SS.ACTIVE]


def test_a_plan_change_in_stripe_applies_the_new_limits_to_the_running_containers(
    live_subscription, stripe_api, stripe_webhook, django_capture_on_commit_callbacks, run_provisioning_worker
):
    subscription, stripe_subscription = live_subscription
    pro = plan_price_create(plan_id=Plan.objects.get(slug="woocommerce-commerce-pro").pk)  # 2 GB, 2 CPU
    stripe_subscription["items"]["data"][0]["price"] = stripe_api.objects[pro.stripe_price_id]

    run_jobs(
        django_capture_on_commit_callbacks,
        run_provisioning_worker,
        lambda: stripe_webhook.post(stripe_api.event("customer.subscription.updated", stripe_subscription)),
    )

    subscription.refresh_from_db()
    store = subscription.stores.get()
    assert subscription.plan == pro and store.plan == pro
    job = store.jobs.filter(kind=ProvisioningJob.Kind.UPDATE_LIMITS).get()
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    host_config = web_container(store).attrs["HostConfig"]
    assert host_config["Memory"] == 2048 * 1024 * 1024 and host_config["NanoCpus"] == 2_000_000_000


def test_subscription_deleted_takes_a_final_backup_stops_the_store_and_tears_it_down_after_retention(
    live_subscription,
    stripe_api,
    stripe_webhook,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    run_backups_worker,
):
    subscription, stripe_subscription = live_subscription
    store = subscription.stores.get()
    code, output = docker_client.container_exec(
        name=f"{store.slug}-db",
        command=[
            "sh",
            "-c",
            f'{DB_ROOT_CLIENT_ENV} mariadb -uroot wordpress -e "$0"',
            "UPDATE wp_posts SET post_title='Written before the end' WHERE ID=1",
        ],
    )
    assert code == 0, output
    stripe_subscription["status"] = "canceled"

    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhook.post(stripe_api.event("customer.subscription.deleted", stripe_subscription))
    # The store keeps running until its final backup is safe; then it is stopped.
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE
    with django_capture_on_commit_callbacks(execute=True):
        run_backups_worker()  # the final backup; its success queues the stop
    run_provisioning_worker()

    subscription.refresh_from_db()
    store.refresh_from_db()
    final = store.backup_runs.get(kind=BackupRun.Kind.FINAL)
    assert final.status == RunStatus.SUCCEEDED, final.error
    [snapshot] = restic.snapshots(tags=[f"store-{store.pk}", "final"])
    assert snapshot["id"] == final.snapshot_id
    assert subscription.status == SS.CANCELED
    assert subscription.teardown_at - subscription.canceled_at == timedelta(days=30)
    assert store.status == Store.Status.SUSPENDED and web_container(store).status == "exited"
    assert "has ended" in mail.outbox[-1].subject

    with time_machine.travel(timezone.now() + timedelta(days=29)):
        assert billing_jobs.subscriptions_teardown_due() == []
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        with django_capture_on_commit_callbacks(execute=True):
            assert billing_jobs.subscriptions_teardown_due() == [subscription.pk]
    run_provisioning_worker()

    subscription.refresh_from_db()
    store.refresh_from_db()
    assert subscription.status == SS.ENDED
    assert store.status == Store.Status.DELETED and store.live_domain is None
    assert docker_client.labelled_objects(label=f"shophosting.store={store.pk}") == {
        "containers": [],
        "networks": [],
        "volumes": [],
    }

    # Staff can bring the store back from its final backup, onto a new domain.
    call_command("restore_final_backup", store.pk, "reborn.test", stdout=io.StringIO())
    reborn = Store.objects.get(domain="reborn.test")
    assert reborn.status == Store.Status.ACTIVE and reborn.customer == store.customer
    code, titles = docker_client.container_exec(
        name=f"{reborn.slug}-db",
        command=[
            "sh",
            "-c",
            f'{DB_ROOT_CLIENT_ENV} mariadb -uroot wordpress -N -e "SELECT post_title FROM wp_posts"',  # noqa: S608
        ],
    )
    assert code == 0 and "Written before the end" in titles
