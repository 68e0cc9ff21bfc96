"""The customer's store page and the staff job page: checklist, log tail, ETA, and only one's own data."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from provisioning.models import JobLogLine, JobStep, ProvisioningJob
from provisioning.services import job_enqueue
from stores.models import Store
from stores.services import store_create, store_credentials_save, store_transition

pytestmark = pytest.mark.django_db


@pytest.fixture
def store_with_job(user_factory, woo_plan, django_capture_on_commit_callbacks):
    """A store whose provisioning job is half done (steps 1-2 succeeded, step 3 running)."""
    owner = user_factory(email="owner@example.com")
    store = store_create(customer=owner, plan=woo_plan, domain="pages.example.com", site_title="Pages")
    store_transition(store_id=store.pk, to=Store.Status.QUEUED)
    job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.PROVISION)  # not run: no commit here
    now = timezone.now()
    ProvisioningJob.objects.filter(pk=job.pk).update(status="running", started_at=now - timedelta(seconds=5))
    steps = list(job.steps.order_by("order"))
    for step in steps[:2]:
        JobStep.objects.filter(pk=step.pk).update(
            status="succeeded", started_at=now - timedelta(seconds=4), finished_at=now - timedelta(seconds=3)
        )
        JobLogLine.objects.create(step=step, message=f"{step.name} done")
    JobStep.objects.filter(pk=steps[2].pk).update(status="running", started_at=now - timedelta(seconds=1))
    return owner, store, job


def test_customer_sees_the_checklist_log_and_eta(client, store_with_job):
    owner, store, job = store_with_job
    client.force_login(owner)
    page = client.get(f"/stores/{store.pk}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Reserve a host and a port" in body and "allocate done" in body
    assert 'src="/static/js/progress.js"' in body

    progress = client.get(f"/stores/{store.pk}/progress.json").json()
    assert [s["status"] for s in progress["progress"]["steps"]][:4] == ["succeeded", "succeeded", "running", "pending"]
    assert progress["progress"]["log"][-1]["message"] == "network done"
    assert progress["progress"]["job"]["active"] is True
    assert progress["store"]["status"] == "queued"


def test_eta_comes_from_the_median_of_past_step_durations(client, store_with_job, user_factory, woo_plan):
    owner, store, job = store_with_job
    # Three past successful runs of every step, taking 1, 2 and 9 s: the median is 2 s a step.
    past_store = store_create(customer=user_factory(), plan=woo_plan, domain="past.example.com")
    for seconds in (1, 2, 9):
        past = ProvisioningJob.objects.create(store=past_store, kind="provision", status="succeeded")
        start = timezone.now() - timedelta(hours=1)
        for order, step in enumerate(job.steps.order_by("order"), 1):
            JobStep.objects.create(
                job=past,
                name=step.name,
                title=step.title,
                order=order,
                status="succeeded",
                started_at=start,
                finished_at=start + timedelta(seconds=seconds),
            )
    client.force_login(owner)
    eta = client.get(f"/stores/{store.pk}/progress.json").json()["progress"]["eta_seconds"]
    remaining = job.steps.filter(status="pending").count()
    # The running step has about 1 s of its 2 s median left, plus 2 s per pending step.
    assert remaining * 2 <= eta <= remaining * 2 + 2


def test_another_customer_gets_404_for_every_store_url(client, store_with_job, user_factory):
    _, store, _ = store_with_job
    client.force_login(user_factory(email="intruder@example.com"))
    for url in (f"/stores/{store.pk}/", f"/stores/{store.pk}/progress.json"):
        assert client.get(url).status_code == 404
    assert client.post(f"/stores/{store.pk}/credentials/").status_code == 404


def test_anonymous_visitors_are_sent_to_login(client, store_with_job):
    _, store, _ = store_with_job
    response = client.get(f"/stores/{store.pk}/progress.json")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_credentials_are_revealed_only_on_post_and_audited(client, store_with_job):
    owner, store, _ = store_with_job
    store_credentials_save(store_id=store.pk, credentials={"admin_user": "owner", "admin_password": "pw-xyz-123"})
    client.force_login(owner)
    assert "pw-xyz-123" not in client.get(f"/stores/{store.pk}/").content.decode()
    assert client.get(f"/stores/{store.pk}/credentials/").status_code == 405
    response = client.post(f"/stores/{store.pk}/credentials/")
    assert response.status_code == 200 and "pw-xyz-123" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    event = AuditEvent.objects.get(event="credentials_revealed")
    assert event.actor == owner and event.detail == {"store_id": store.pk}


def test_dashboard_lists_the_customers_stores(client, store_with_job):
    owner, store, _ = store_with_job
    client.force_login(owner)
    assert "pages.example.com" in client.get("/accounts/").content.decode()


def test_staff_job_page_has_the_live_checklist(client, store_with_job, staff_user, user_factory):
    _, _, job = store_with_job
    client.force_login(staff_user)
    page = client.get(f"/admin/provisioning/provisioningjob/{job.pk}/change/")
    assert page.status_code == 200 and "Live progress" in page.content.decode()
    progress = client.get(f"/admin/provisioning/provisioningjob/{job.pk}/progress.json").json()
    assert progress["progress"]["steps"][0]["title"] == "Reserve a host and a port"
    client.force_login(user_factory())  # a customer
    assert client.get(f"/admin/provisioning/provisioningjob/{job.pk}/progress.json").status_code == 302


def test_staff_see_stores_with_status_and_tls_read_only(client, store_with_job, staff_user):
    _, store, _ = store_with_job
    client.force_login(staff_user)
    assert "pages.example.com" in client.get("/admin/stores/store/").content.decode()
    page = client.get(f"/admin/stores/store/{store.pk}/change/").content.decode()
    assert "Tls status" in page and 'name="status"' not in page  # status changes only through services
    assert "credentials_encrypted" not in page
    assert client.get("/admin/stores/host/").status_code == 200
