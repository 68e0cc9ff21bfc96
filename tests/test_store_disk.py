"""Disk use per store: measured from the engine's own report of the store's volumes, shown to the merchant
and to staff against the plan's allowance, and mailed once at 80 % and once when over."""

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from provisioning.services import stores_disk_measure
from stores.models import Store
from stores.selectors import GB, store_disk_usage
from stores.services import store_disk_record
from tests.test_backups import WP_CONTENT, live_store, web  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def record(store: Store, share: float) -> Store:
    """What the measuring job records for a store using `share` of its plan's allowance."""
    used = int(share * store.plan.disk_allowance_gb * GB)
    return store_disk_record(store_id=store.pk, used_bytes=used, measured_at=timezone.now())


def test_the_merchant_is_told_once_at_80_percent_and_once_when_over_and_again_after_making_room(
    recorded_active_store, django_capture_on_commit_callbacks
):
    store = recorded_active_store
    assert store_disk_usage(store) is None  # not measured yet
    sent = []
    for share in (0.5, 0.85, 0.9, 1.1, 1.2, 0.1, 0.81):
        mail.outbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            store = record(store, share)
        sent.append((store_disk_usage(store).state, [m.subject for m in mail.outbox]))

    domain = store.domain
    assert sent == [
        ("ok", []),
        ("warning", [f"{domain} has used 85% of its disk"]),
        ("warning", []),
        ("over", [f"{domain} uses more disk than its plan allows"]),
        ("over", []),
        ("ok", []),  # room was made: the next crossing is told again
        ("warning", [f"{domain} has used 81% of its disk"]),
    ]


def test_the_store_page_and_the_staff_store_list_show_disk_use_against_the_allowance(
    client, recorded_active_store, staff_user
):
    store = record(recorded_active_store, 1.05)
    client.force_login(store.customer)
    page = client.get(reverse("stores:detail", args=[store.pk])).content.decode()
    allowance = store.plan.disk_allowance_gb
    assert 'data-disk-state="over"' in page and f"of {allowance} GB (105%)" in page
    assert "Over your plan&#x27;s allowance" in page or "Over your plan's allowance" in page

    client.force_login(staff_user)
    listing = client.get(reverse("admin:stores_store_changelist")).content.decode()
    assert f"{store_disk_usage(store).used_gb} GB (105%)" in listing


def test_the_pricing_page_sells_each_plans_disk_allowance(client, woo_plan, site_pages):
    page = client.get("/pricing/").content.decode()
    assert f"{woo_plan.disk_allowance_gb} GB disk per store" in page


@pytest.mark.docker
def test_disk_use_is_measured_from_the_stores_own_volumes(live_store):  # noqa: F811
    stores_disk_measure()
    live_store.refresh_from_db()
    before = live_store.disk_bytes
    assert before > 1024 * 1024  # WordPress's database and wp-content
    web(live_store, f"head -c 8000000 /dev/urandom > {WP_CONTENT}/uploads-big.bin")

    assert stores_disk_measure() >= 1
    live_store.refresh_from_db()
    assert live_store.disk_bytes - before >= 8_000_000
    assert live_store.disk_measured_at is not None


def test_a_staging_copy_counts_against_its_live_stores_allowance_and_is_shown_as_such(
    client, store_in_status, staff_user, django_capture_on_commit_callbacks
):
    from backups.staging.services import staging_create
    from billing.models import Plan

    live = store_in_status(Store.Status.ACTIVE, plan=Plan.objects.get(slug="woocommerce-commerce-pro"))
    copy = staging_create(live_store_id=live.pk).staging
    allowance = live.plan.disk_allowance_gb * GB
    # The copy alone would be 50 %, the live store alone 40 %: together they cross 80 %, told on the live store.
    with django_capture_on_commit_callbacks(execute=True):
        store_disk_record(store_id=copy.pk, used_bytes=allowance // 2, measured_at=timezone.now())
        live = store_disk_record(
            store_id=live.pk, used_bytes=allowance * 9 // 10, staging_bytes=allowance // 2, measured_at=timezone.now()
        )
    assert [m.subject for m in mail.outbox] == [f"{live.domain} has used 90% of its disk"]
    usage = store_disk_usage(live)
    assert f"of which its staging copy: {usage.staging_gb} GB" in mail.outbox[0].alternatives[0][0]
    assert (usage.state, usage.staging_gb) == ("warning", f"{allowance / 2 / GB:.2f}")

    client.force_login(live.customer)
    page = client.get(reverse("stores:detail", args=[live.pk])).content.decode()
    assert f"({usage.percent}%; of which staging: {usage.staging_gb} GB)" in page
    client.force_login(staff_user)
    listing = client.get(reverse("admin:stores_store_changelist")).content.decode()
    assert f"{usage.used_gb} GB (90%); of which staging: {usage.staging_gb} GB" in listing
