"""Closing an account end to end, on the real Docker engine and a real restic repository: the customer closes
it from their account page, Stripe (faked at its HTTP boundary) gets the cancel request, sign-in stops at
once, the store gets its final backup and is torn down after it, and after the retention the purge forgets
the snapshots, anonymises the customer and redacts the audit rows. One provisioned store serves the whole
flow."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from djstripe import models as djstripe_models

from accounts.closure import closed_account_placeholder
from accounts.models import AccountClosure, AuditEvent
from backups import restic
from backups.models import BackupRun, RunStatus
from billing import jobs as billing_jobs
from billing.models import Subscription
from provisioning import docker_client
from stores.models import Store
from tests.billing_helpers import SIGNUP

pytestmark = [pytest.mark.django_db, pytest.mark.docker]
CS = AccountClosure.Status


def test_a_closed_account_loses_its_stores_after_their_final_backups_and_is_purged_after_the_retention(
    client,
    live_subscription,
    stripe_api,
    stripe_webhook,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    run_backups_worker,
):
    subscription, stripe_subscription = live_subscription
    store = subscription.stores.get()
    customer = subscription.customer

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:leave"), {"password": SIGNUP["password"], "understood": "on"})

    assert response.status_code == 200 and "Your account is being closed" in response.content.decode()
    # Stripe was asked to cancel, through the gateway; its webhook arriving afterwards changes nothing.
    assert stripe_api.requests_to("DELETE", f"subscriptions/{stripe_subscription['id']}") == [{}]
    stripe_subscription["status"] = "canceled"
    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhook.post(stripe_api.event("customer.subscription.deleted", stripe_subscription))
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert "kept for 30 days" in mail.outbox[-1].body
    # Signed out, and the password no longer opens the account, while the store is still there.
    assert client.get(reverse("accounts:home")).status_code == 302
    client.post(reverse("accounts:login"), {"username": SIGNUP["email"], "password": SIGNUP["password"]})
    assert "_auth_user_id" not in client.session
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE  # not before its final backup

    with django_capture_on_commit_callbacks(execute=True):
        run_backups_worker()  # the final backup; its success queues the stop
    run_provisioning_worker()
    final = store.backup_runs.get(kind=BackupRun.Kind.FINAL)
    assert final.status == RunStatus.SUCCEEDED, final.error
    assert [s["id"] for s in restic.snapshots(tags=[f"store-{store.pk}", "final"])] == [final.snapshot_id]

    with django_capture_on_commit_callbacks(execute=True):
        assert billing_jobs.account_closures_advance() == {"closed": [], "purged": []}  # the teardown is queued
    run_provisioning_worker()
    store.refresh_from_db()
    assert store.status == Store.Status.DELETED
    assert docker_client.labelled_objects(label=f"shophosting.store={store.pk}") == {
        "containers": [],
        "networks": [],
        "volumes": [],
    }

    closure = AccountClosure.objects.get(user=customer)
    assert billing_jobs.account_closures_advance() == {"closed": [closure.pk], "purged": []}
    closure.refresh_from_db()
    assert closure.status == CS.CLOSED and closure.purge_after == closure.closed_at + timedelta(days=30)
    # Kept for the stated retention...
    with time_machine.travel(timezone.now() + timedelta(days=29)):
        assert billing_jobs.account_closures_advance() == {"closed": [], "purged": []}
    assert restic.snapshots(tags=[f"store-{store.pk}"]) != []

    # ...then everything else goes.
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        with django_capture_on_commit_callbacks(execute=True):
            assert billing_jobs.account_closures_advance() == {"closed": [], "purged": [closure.pk]}

    closure.refresh_from_db()
    customer.refresh_from_db()
    store.refresh_from_db()
    placeholder = closed_account_placeholder(customer.pk)
    assert closure.status == CS.PURGED
    assert restic.snapshots(tags=[f"store-{store.pk}"]) == []
    # Stripe deleted the customer (it keeps their invoices); the mirror keeps the row, emptied.
    assert stripe_api.requests_to("DELETE", f"customers/{subscription.stripe_customer_id}") == [{}]
    mirrored = djstripe_models.Customer.objects.get(id=subscription.stripe_customer_id)
    assert mirrored.email == "" and mirrored.date_purged is not None and mirrored.stripe_data["email"] is None
    assert not store.backup_runs.filter(forgotten_at__isnull=True).exclude(snapshot_id="").exists()
    assert customer.email == f"{placeholder}@closed.invalid" and customer.company == ""
    assert store.domain == f"{placeholder}-store-{store.pk}.invalid" and store.credentials_encrypted == ""
    trail = json.dumps([[r.actor_email, r.ip_address, r.detail] for r in AuditEvent.objects.all()], default=str)
    assert SIGNUP["email"] not in trail and SIGNUP["company"] not in trail
    assert AuditEvent.objects.filter(event="login_success", actor=customer, actor_email=placeholder).exists()
    assert list(closure.events.values_list("new_status", flat=True)) == [CS.CLOSING, CS.CLOSED, CS.PURGED]
