"""The public status page: staff write and close notices in the admin (audited), the page shows each platform
component's state and the recent notices, it is off unless STATUS_PAGE_ENABLED, and it names no store."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from accounts.roles import Role
from accounts.services import staff_user_ensure
from shophosting.status.models import StatusNotice
from stores.services import store_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def enabled(settings):
    settings.STATUS_PAGE_ENABLED = True
    return settings


@pytest.fixture
def operator(client):
    user, _ = staff_user_ensure(email="ops@example.com", role=Role.ADMIN, password="operator password 1")
    staff = client.__class__()
    staff.force_login(user)
    return staff


def _components(page: str) -> dict[str, str]:
    import re

    return dict(re.findall(r'data-component="(\w+)" data-state="(\w+)"', page))


def test_a_notice_staff_publish_appears_and_once_closed_shows_as_resolved(
    client, operator, enabled, django_capture_on_commit_callbacks
):
    page = client.get("/status/").content.decode()  # also fills the cache the admin change must clear
    assert set(_components(page).values()) == {"operational"} and "No current notices" in page

    form = {
        "title": "Slow provisioning",
        "body": "New stores take longer than usual to go live.",
        "component": "provisioning",
        "severity": "degraded",
        "started_at_0": "2026-12-05",
        "started_at_1": "10:00:00",
        "published": "on",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(reverse("admin:statuspage_statusnotice_add"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    notice = StatusNotice.objects.get()
    assert AuditEvent.objects.filter(event="admin_add", detail__model="statuspage.statusnotice").exists()

    page = client.get("/status/").content.decode()
    assert _components(page) == {
        "web": "operational",
        "provisioning": "degraded",
        "backups": "operational",
        "hosting": "operational",
    }
    assert f'data-notice="{notice.pk}" data-notice-state="open"' in page and "Slow provisioning" in page

    changelist = reverse("admin:statuspage_statusnotice_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        operator.post(changelist, {"action": "close", "_selected_action": [notice.pk]})
    notice.refresh_from_db()
    assert notice.closed_at is not None
    assert AuditEvent.objects.filter(event="admin_action", detail__action="close").exists()
    page = client.get("/status/").content.decode()
    assert _components(page)["provisioning"] == "operational"
    assert f'data-notice="{notice.pk}" data-notice-state="resolved"' in page and "Resolved" in page


def test_unpublished_notices_stay_off_the_page_and_a_notice_cannot_close_before_it_starts(client, operator, enabled):
    StatusNotice.objects.create(title="Draft outage", body="x", component="hosting", severity="outage")
    page = client.get("/status/").content.decode()
    assert "Draft outage" not in page and _components(page)["hosting"] == "operational"
    response = operator.post(
        reverse("admin:statuspage_statusnotice_add"),
        {
            "title": "Backwards",
            "body": "x",
            "component": "backups",
            "severity": "maintenance",
            "started_at_0": "2026-12-05",
            "started_at_1": "10:00:00",
            "closed_at_0": "2026-12-04",
            "closed_at_1": "10:00:00",
        },
    )
    assert response.status_code == 200 and "A notice cannot close before it started." in response.content.decode()
    assert not StatusNotice.objects.filter(title="Backwards").exists()


def test_the_status_page_is_a_404_unless_enabled(client, settings):
    settings.STATUS_PAGE_ENABLED = False
    assert client.get("/status/").status_code == 404


def test_the_status_page_names_no_store_or_customer(client, enabled, user_factory, woo_plan):
    customer = user_factory(email="secret-merchant@example.com")
    store_create(customer=customer, plan=woo_plan, domain="secret-shop.test")
    StatusNotice.objects.create(
        title="Hosting degraded",
        body="Some stores answer slowly.",
        component="hosting",
        severity="degraded",
        published=True,
    )
    page = client.get("/status/").content.decode()
    assert "Hosting degraded" in page and 'id="status-page"' in page and "site-header" in page  # the base template
    assert "secret-shop" not in page and "secret-merchant" not in page


def test_support_reads_notices_but_does_not_write_them(client):
    user, _ = staff_user_ensure(email="desk@example.com", role=Role.SUPPORT, password="support password 1")
    client.force_login(user)
    assert client.get(reverse("admin:statuspage_statusnotice_changelist")).status_code == 200
    assert client.get(reverse("admin:statuspage_statusnotice_add")).status_code == 403
