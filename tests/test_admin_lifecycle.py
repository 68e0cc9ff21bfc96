"""A customer's life run by staff from the admin, on a real Docker engine and nginx with Stripe faked at its
HTTP boundary: open the store, see the failure, retry, suspend, resume, delete (teardown + Stripe cancel)."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import AuditEvent, User
from billing.models import Subscription
from provisioning import docker_client
from provisioning.models import ProvisioningJob
from stores.dns import NameRecords
from stores.models import Store, StoreName
from stores.names import store_name_check_record
from tests.billing_helpers import complete_checkout

pytestmark = pytest.mark.django_db
NEW_STORE = reverse("admin:stores_store_add")


def audited(name: str) -> list[dict]:
    return [e.detail for e in AuditEvent.objects.filter(event=name).order_by("pk")]


def container_status(store: Store, role: str) -> str:
    return docker_client.client().containers.get(f"{store.slug}-{role}").status


@pytest.mark.docker
def test_staff_run_a_customer_lifecycle_from_the_admin(
    client,
    staff_user,
    priced_plan,
    stripe_api,
    stripe_webhook,
    store_images,
    clean_test_stores,
    settings,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    client.force_login(staff_user)
    good_images = settings.STORE_IMAGES
    settings.STORE_IMAGES = {**good_images, "woocommerce": {**good_images["woocommerce"], "web": "shophosting/nope:1"}}

    # Staff open the customer and the store; the customer is e-mailed a checkout link and a password link.
    form = {"email": "life@example.com", "company": "Life Ltd", "plan": priced_plan.pk, "domain": "life.test"}
    response = client.post(NEW_STORE, form)
    # The domain typed waits for its proof (it reserves nothing); the store goes by its platform name meanwhile.
    store = Store.objects.get(names__name="life.test")
    assert response.status_code == 302 and store.status == Store.Status.AWAITING_PAYMENT
    subscription = store.subscription
    [opened] = mail.outbox
    assert "https://checkout.stripe.com/c/pay/" in opened.body and "/accounts/password/reset/" in opened.body
    assert not User.objects.get(email="life@example.com").has_usable_password()

    # The customer pays; provisioning fails at the web server.
    session, stripe_subscription = complete_checkout(
        stripe_api, subscription.checkout_session_id, price_id=priced_plan.stripe_price_id
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert stripe_webhook.post(stripe_api.event("checkout.session.completed", session)).status_code == 200
    run_provisioning_worker()
    store.refresh_from_db()
    failed = store.jobs.get()
    assert store.status == Store.Status.FAILED and failed.status == ProvisioningJob.Status.FAILED

    # The dashboard shows the failure with its step; one click retries it for real.
    dashboard = client.get(reverse("admin:index")).content.decode()
    assert "Start the web server" in dashboard and store.domain in dashboard
    detail = client.get(reverse("admin:stores_store_change", args=[store.pk])).content.decode()
    assert "<details" in detail and "Traceback" in detail  # the error, folded under its summary
    settings.STORE_IMAGES = good_images
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:job_retry", args=[failed.pk]))
    run_provisioning_worker()
    store.refresh_from_db()
    retry = store.jobs.latest("pk")
    assert (retry.kind, retry.status, store.status) == ("retry", "succeeded", Store.Status.ACTIVE), retry.error
    assert audited("job_retried") == [{"job_id": failed.pk, "new_job_id": retry.pk, "store_id": store.pk}]

    # Credentials: revealed on POST only, and audited.
    credentials = reverse("admin:stores_store_credentials", args=[store.pk])
    assert client.get(credentials).status_code == 302
    revealed = client.post(credentials).content.decode()
    assert "admin_password" in revealed and audited("credentials_revealed")[0]["store_id"] == store.pk

    # Suspend stops the containers; resume starts them.
    store_page = reverse("admin:stores_store_change", args=[store.pk])
    for operation, status, web in [("suspend", "suspended", "exited"), ("resume", "active", "running")]:
        with django_capture_on_commit_callbacks(execute=True):
            client.post(reverse("admin:store_operate"), {"store": store.pk, "operation": operation, "next": store_page})
        run_provisioning_worker()
        store.refresh_from_db()
        assert store.status == status and container_status(store, "web") == web, operation
        assert container_status(store, "db") == web
    assert [d["store_id"] for d in audited("store_suspend_requested") + audited("store_resume_requested")] == [
        store.pk,
        store.pk,
    ]

    # Delete: a confirmation page, the domain typed, then teardown and the Stripe subscription canceled.
    delete = reverse("admin:stores_store_delete", args=[store.pk])
    confirm = client.get(delete).content.decode()
    assert "the subscription is canceled in Stripe now" in confirm
    wrong = client.post(delete, {"confirm": "not-the-domain.test"}).content.decode()
    assert "Type the domain exactly" in wrong and store.jobs.count() == 4
    with django_capture_on_commit_callbacks(execute=True):
        client.post(delete, {"confirm": store.domain})
    run_provisioning_worker()
    store.refresh_from_db()
    subscription.refresh_from_db()
    assert store.status == Store.Status.DELETED
    assert docker_client.labelled_objects(label=f"shophosting.store={store.pk}") == {
        "containers": [],
        "networks": [],
        "volumes": [],
    }
    assert stripe_api.requests_to("DELETE", f"subscriptions/{stripe_subscription['id']}") == [{}]
    assert stripe_api.objects[stripe_subscription["id"]]["status"] == "canceled"
    assert subscription.status == Subscription.Status.CANCELED
    assert subscription.events.latest("pk").actor == staff_user
    assert audited("store_delete_requested")[0]["store_id"] == store.pk


def test_a_busy_store_or_a_refused_stripe_cancel_deletes_nothing(
    client, staff_user, priced_plan, stripe_api, stripe_webhook
):
    from tests.billing_helpers import paid_signup

    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    store = subscription.stores.get()
    client.force_login(staff_user)
    delete = reverse("admin:stores_store_delete", args=[store.pk])

    # Still being set up: refused before Stripe is asked anything.
    busy = client.post(delete, {"confirm": store.domain}, follow=True).content.decode()
    assert f"Not deleted: {store.domain} is queued" in busy
    assert stripe_api.requests_to("DELETE", "subscriptions/") == []

    # Set up, then Stripe refuses the cancel: nothing changes here either.
    store.jobs.update(status=ProvisioningJob.Status.SUCCEEDED)
    Store.objects.filter(pk=store.pk).update(status=Store.Status.ACTIVE)
    stripe_api.fail_next("DELETE", f"subscriptions/{stripe_subscription['id']}", status=400, message="No such thing")
    page = client.post(delete, {"confirm": store.domain}, follow=True)

    assert "Nothing was deleted: Stripe said" in page.content.decode()
    store.refresh_from_db()
    subscription.refresh_from_db()
    assert store.status == Store.Status.ACTIVE and subscription.status == Subscription.Status.ACTIVE
    assert not store.jobs.filter(kind="teardown").exists()


def test_staff_open_a_store_without_payment_for_a_stated_reason(client, staff_user, woo_plan, user_factory):
    client.force_login(staff_user)
    form = {"email": "trial@example.com", "plan": woo_plan.pk, "domain": "trial.test", "skip_payment": "on"}

    missing_reason = client.post(NEW_STORE, form)
    assert "Say why payment is skipped." in missing_reason.content.decode()
    assert not Store.objects.filter(names__name="trial.test").exists()

    response = client.post(NEW_STORE, {**form, "reason": "14-day trial agreed by sales"})

    store = Store.objects.get(names__name="trial.test")
    assert store.names.get(name="trial.test").status == StoreName.Status.PENDING  # staff vouch for nothing either
    assert response.status_code == 302 and response["Location"] == reverse("admin:stores_store_change", args=[store.pk])
    assert store.status == Store.Status.QUEUED and store.jobs.get().kind == "provision"  # provisioning started
    subscription = store.subscription
    assert subscription.status == Subscription.Status.ACTIVE and not subscription.stripe_subscription_id
    assert subscription.events.latest("pk").note == "payment skipped by staff: 14-day trial agreed by sales"
    [event] = audited("store_created_by_staff")
    assert event["skip_payment"] is True and event["reason"] == "14-day trial agreed by sales"
    [email] = mail.outbox
    assert "nothing to pay" in email.body and re.search(r"/accounts/password/reset/\S+/\S+/", email.body)

    # Bad input: a domain another store has proven, a staff address, an unknown plan. Each says why and
    # creates nothing.
    trial = store.names.get(name="trial.test")
    store_name_check_record(
        name_id=trial.pk,
        records=NameRecords(name="trial.test", txt=(trial.proof_token,), addresses=frozenset()),
    )
    taken = client.post(NEW_STORE, {**form, "email": "other@example.com", "reason": "trial"}).content.decode()
    assert "already in use by another store" in taken
    staff = client.post(NEW_STORE, {**form, "email": staff_user.email, "domain": "x.test", "reason": "t"})
    assert "belongs to a staff account" in staff.content.decode()
    unknown = client.post(NEW_STORE, {**form, "plan": 999_999, "domain": "y.test", "reason": "t"})
    assert "Select a valid choice" in unknown.content.decode()
    assert not User.objects.filter(email="other@example.com").exists()
    assert Store.objects.filter(domain__in=["x.test", "y.test"]).count() == 0
