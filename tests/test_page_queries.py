"""Pages that keep up (issue #21): the customer dashboard, the staff index and the store list ask the database
as often with 10,000 stores as with 10, and the dashboard, read from the per-customer cache
(shophosting/core/customer_pages.py), shows every change at the next view and never another merchant's data.
The staff index's live part, shared for STAFF_LIVE_SECONDS, shows a change staff make at the next view and a
worker's within those seconds."""

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from backups.models import BackupRun, RunStatus
from billing.models import Subscription
from provisioning.models import ProvisioningJob
from shophosting.staff.selectors import LIVE_CACHE_KEY, LIVE_GENERATION_KEY
from stores.models import Store
from stores.services import store_transition

pytestmark = pytest.mark.django_db

User = get_user_model()
HOME = "accounts:home"


@pytest.fixture
def caches_on(settings, page_cache_on):
    """The caches as production has them (the test settings turn them off): the marketing menu shown on
    signed-in pages is cached with the marketing pages."""
    settings.CUSTOMER_PAGE_CACHE_SECONDS = 300
    settings.STAFF_FIGURES_SECONDS = 60
    # Longer than production's 5 s: what these tests read twice must not expire between on a slow machine, and a
    # change staff make must not show only because the entry ran out.
    settings.STAFF_LIVE_SECONDS = 30
    cache.delete_pattern("staff:dashboard:*")  # kept from another test's rows, which rolled back
    yield
    cache.delete_pattern("staff:dashboard:*")


def queries_of(client, url, *, status=200) -> list[str]:
    """The queries one page view makes, without the session's own (the idle timeout refreshes it now and then)."""
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == status
    sqls = [query["sql"] for query in captured.captured_queries]
    return [sql for sql in sqls if "django_session" not in sql and "SAVEPOINT" not in sql]


def add_stores(plan, count: int, start: int) -> None:
    """`count` active stores of new customers (three each), with backups, jobs and subscriptions, in bulk."""
    customers = User.objects.bulk_create(
        User(email=f"crowd{i}@example.com", password="!") for i in range(start, start + (count + 2) // 3)
    )
    subscriptions = Subscription.objects.bulk_create(
        Subscription(customer=c, plan=plan, status=Subscription.Status.ACTIVE) for c in customers
    )
    stores = Store.objects.bulk_create(
        Store(
            customer=customers[i // 3],
            subscription=subscriptions[i // 3],
            plan=plan,
            platform="woocommerce",
            domain=f"crowd{start + i}.test",
            live_domain=f"crowd{start + i}.test",
            status=Store.Status.ACTIVE,
        )
        for i in range(count)
    )
    now = timezone.now()
    BackupRun.objects.bulk_create(
        BackupRun(store=s, kind="scheduled", status=status, finished_at=now, size_bytes=1 << 20)
        for s in stores
        for status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
    )
    ProvisioningJob.objects.bulk_create(ProvisioningJob(store=s, kind="provision", status="failed") for s in stores)


def test_dashboard_staff_index_and_store_list_ask_as_often_with_10_000_stores_as_with_10(
    client, caches_on, staff_user, woo_plan, store_in_status, user_factory
):
    merchant = user_factory()
    for n in range(3):
        store_in_status("active", customer=merchant, domain=f"mine{n}.test")
    pages = [(merchant, reverse(HOME)), (staff_user, reverse("admin:index"))]
    pages.append((staff_user, reverse("admin:stores_store_changelist")))

    def measure() -> dict:
        counts = {}
        for user, url in pages:
            client.force_login(user)
            cache.delete_pattern("*")  # cold: the dashboard and the staff figures computed afresh
            cold = queries_of(client, url)
            warm = queries_of(client, url)
            counts[url] = (len(cold), len(warm))
        return counts

    add_stores(woo_plan, 10, start=0)
    small = measure()
    add_stores(woo_plan, 9_990, start=10)
    assert Store.objects.count() >= 10_000
    large = measure()

    assert large == small
    # Warm, the dashboard and the staff index ask for the signed-in user (with their second-factor devices)
    # and nothing else.
    assert small[reverse(HOME)][1] == 1, small
    assert small[reverse("admin:index")][1] == 1, small


# --- The dashboard's cache: every change shows at the next view ---------------------------------------------


@pytest.fixture
def merchant_client(client, caches_on, user_factory, store_in_status):
    merchant = user_factory()
    store = store_in_status("active", customer=merchant, domain="first.test")
    client.force_login(merchant)
    page = client.get(reverse(HOME)).content.decode()
    assert "first.test" in page and "none yet" in page
    warm = queries_of(client, reverse(HOME))
    assert len(warm) == 1, warm  # from the cache from now on
    return client, merchant, store


def home(client) -> str:
    return client.get(reverse(HOME)).content.decode()


def test_a_status_change_a_new_store_and_a_backup_show_at_the_next_view(merchant_client, store_in_status):
    client, merchant, store = merchant_client

    store_transition(store_id=store.pk, to=Store.Status.SUSPENDED, note="test")
    assert "Suspended" in home(client)

    store_in_status("active", customer=merchant, domain="second.test")
    assert "second.test" in home(client)

    run = BackupRun.objects.create(store=store, kind="manual", status=RunStatus.RUNNING)
    assert "none yet" in home(client)  # both stores have no good backup yet
    # The backup services finish a run with a queryset update, which sends no signal.
    BackupRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
    page = home(client)
    assert page.count("none yet") == 1 and "0\xa0minutes ago" in page


def test_a_queryset_update_and_a_deletion_show_at_the_next_view(merchant_client):
    client, _merchant, store = merchant_client

    Store.objects.filter(pk=store.pk).update(site_title="Renamed in bulk")
    assert "Renamed in bulk" in home(client)
    with transaction.atomic():  # as the services write: under a row lock
        Store.objects.select_for_update().filter(pk=store.pk).update(site_title="Renamed under a lock")
    assert "Renamed under a lock" in home(client)

    Store.objects.filter(pk=store.pk).update(status=Store.Status.DELETED)  # a deleted store is not listed
    assert "first.test" not in home(client)


def test_a_store_given_to_another_customer_leaves_the_first_ones_dashboard_at_once(
    merchant_client, user_factory, django_user_model
):
    client, merchant, store = merchant_client
    other = user_factory()
    client.force_login(other)
    assert "first.test" not in home(client)  # cached for the other merchant too, without it

    store.customer = other
    store.save(update_fields=["customer"])
    assert "first.test" in home(client)
    client.force_login(merchant)
    assert "first.test" not in home(client)

    Store.objects.filter(pk=store.pk).update(customer=merchant)  # and back, in bulk
    assert "first.test" in home(client)
    client.force_login(other)
    assert "first.test" not in home(client)


def test_room_for_another_store_follows_the_subscription_and_the_plan(merchant_client, woo_plan):
    client, merchant, store = merchant_client
    subscription = Subscription.objects.create(customer=merchant, plan=woo_plan, status=Subscription.Status.ACTIVE)
    woo_plan.store_limit = 3
    woo_plan.save()  # a plan saved (staff, the catalogue): the marketing cache's generation moves
    Store.objects.filter(pk=store.pk).update(subscription=subscription)
    assert "1 of 3 stores in use" in home(client)

    woo_plan.store_limit = 4
    woo_plan.save()
    assert "1 of 4 stores in use" in home(client)

    subscription.status = Subscription.Status.CANCELED
    subscription.save(update_fields=["status"])
    assert "Add a store" not in home(client)


def test_each_merchant_sees_only_their_own_stores_from_the_cache(client, caches_on, user_factory, store_in_status):
    first, second = user_factory(), user_factory()
    store_in_status("active", customer=first, domain="first-only.test")
    store_in_status("active", customer=second, domain="second-only.test")
    for _ in range(2):  # cold, then from the cache
        client.force_login(first)
        page = home(client)
        assert "first-only.test" in page and "second-only.test" not in page
        client.force_login(second)
        page = home(client)
        assert "second-only.test" in page and "first-only.test" not in page


def test_the_dashboard_is_never_kept_for_an_anonymous_visitor_or_served_from_the_page_cache(merchant_client):
    client, _merchant, _store = merchant_client
    assert "X-Page-Cache" not in client.get(reverse(HOME))
    client.logout()
    response = client.get(reverse(HOME))
    assert response.status_code == 302 and "first.test" not in response.content.decode()


# --- The user with their second-factor devices, in one query --------------------------------------------------


def test_a_device_confirmed_in_another_session_gates_this_one_at_its_next_request(merchant_client):
    client, merchant, _store = merchant_client
    device = TOTPDevice.objects.create(user=merchant, name="phone", confirmed=False)
    assert client.get(reverse(HOME)).status_code == 200  # not confirmed yet: no gate
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    response = client.get(reverse(HOME))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:second_factor"))
    TOTPDevice.objects.filter(pk=device.pk).delete()
    assert client.get(reverse(HOME)).status_code == 200


# --- The staff model list, built and rendered once per distinct list -----------------------------------------


def test_the_staff_model_list_is_each_roles_own_and_marks_the_page_it_is_on(client, staff_user):
    from accounts.roles import Role
    from accounts.services import staff_user_ensure

    support, _ = staff_user_ensure(email="support@example.com", role=Role.SUPPORT, password="support password 1")
    add_store = f'<a href="{reverse("admin:stores_store_add")}" class="addlink"'
    for _ in range(2):  # built and rendered, then reused: each role keeps its own
        client.force_login(staff_user)
        assert add_store in client.get(reverse("admin:index")).content.decode()
        client.force_login(support)
        assert add_store not in client.get(reverse("admin:index")).content.decode()

    client.force_login(staff_user)
    stores = client.get(reverse("admin:stores_store_changelist")).content.decode()
    jobs = client.get(reverse("admin:provisioning_provisioningjob_changelist")).content.decode()
    assert 'class="model-store current-model"' in stores and 'class="model-store current-model"' not in jobs
    assert 'class="model-provisioningjob current-model"' in jobs


# --- The staff index's live part: shared for a few seconds, read afresh after a change staff make -----------


def staff_index(client) -> str:
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    return response.content.decode()


def my_actions(page: str) -> str:
    """The index's "Recent actions: My actions" box."""
    return page.split('id="recent-actions-module"', 1)[1].split("</div>", 1)[0]


def test_the_staff_index_reads_what_staff_act_on_once_for_all_staff_within_a_few_seconds(client, caches_on, staff_user):
    from accounts.roles import Role
    from accounts.services import staff_user_ensure

    live_tables = ("provisioning_provisioningjob", "provisioning_incident", "consultations_ticket")
    client.force_login(staff_user)
    first = queries_of(client, reverse("admin:index"))
    again = queries_of(client, reverse("admin:index"))
    other, _ = staff_user_ensure(email="second@example.com", role=Role.ADMIN, password="second password 1")
    client.force_login(other)
    others = queries_of(client, reverse("admin:index"))

    assert all(any(table in sql for sql in first) for table in live_tables), first
    # Read again: the signed-in user only (with the cache off, every live read and the recent actions again).
    assert len(again) == 1, again
    # Another member of staff a moment later: their own recent actions, nothing of the live part.
    assert not [sql for sql in others if any(table in sql for table in live_tables)], others
    assert 0 < cache.ttl(LIVE_CACHE_KEY) <= 30  # Redis drops it by then too


def test_a_change_the_workers_make_shows_within_staff_live_seconds(
    client, caches_on, staff_user, store_in_status, settings
):
    store = store_in_status("failed", domain="worker.test")
    client.force_login(staff_user)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert "data-job-failed" not in staff_index(client)
    job = ProvisioningJob.objects.create(store=store, kind="provision", status="failed", finished_at=start)

    with time_machine.travel(start + timezone.timedelta(seconds=29.9), tick=False):
        page = staff_index(client)
    assert f'data-job-failed="{job.pk}"' not in page  # kept, and the page says since when
    assert f"tickets as of {start:%H:%M:%S} UTC, at most 30 s old" in page
    with time_machine.travel(start + timezone.timedelta(seconds=30), tick=False):
        assert f'data-job-failed="{job.pk}"' in staff_index(client)


def test_a_change_made_through_the_staff_site_shows_at_the_next_view_for_all_staff(
    client, caches_on, staff_user, store_in_status
):
    from accounts.roles import Role
    from accounts.services import staff_user_ensure
    from stores.models import Host

    store = store_in_status("failed", domain="retried.test")
    failed = ProvisioningJob.objects.create(store=store, kind="provision", status="failed", finished_at=timezone.now())
    host = Host.objects.create(
        name="gone-soon", docker_url="unix:///nowhere.sock", memory_capacity_mb=1024, cpu_capacity=1
    )
    other, _ = staff_user_ensure(email="second@example.com", role=Role.ADMIN, password="second password 1")
    client.force_login(other)
    staff_index(client)
    client.force_login(staff_user)
    page = staff_index(client)
    assert f'data-job-failed="{failed.pk}"' in page and "data-job-active" not in page
    assert "None available" in my_actions(page)

    # Within the few seconds the live part is kept: a retry and a deletion through the staff site.
    assert client.post(reverse("admin:job_retry", args=[failed.pk])).status_code == 302
    retry = ProvisioningJob.objects.exclude(pk=failed.pk).get(store=store)
    client.post(reverse("admin:stores_host_delete", args=[host.pk]), {"post": "yes"})
    assert not Host.objects.filter(pk=host.pk).exists()

    page = staff_index(client)
    assert f'data-job-active="{retry.pk}"' in page
    assert '<li class="deletelink">' in my_actions(page) and "gone-soon" in my_actions(page)
    client.force_login(other)
    assert f'data-job-active="{retry.pk}"' in staff_index(client)  # everyone's next view


def test_a_change_made_in_the_rq_dashboard_has_the_next_view_read_the_live_part_afresh(
    client, caches_on, staff_user, settings
):
    def reads_jobs() -> bool:
        return any("provisioning_provisioningjob" in sql for sql in queries_of(client, reverse("admin:index")))

    client.force_login(staff_user)
    assert reads_jobs() and not reads_jobs()  # then kept for a few seconds
    index = list(settings.RQ_QUEUES).index("default")  # django-rq numbers the queues in this order
    assert client.get(reverse("django_rq:delete_failed_jobs", args=[index])).status_code == 200  # its confirmation
    assert not reads_jobs()
    assert client.post(reverse("django_rq:delete_failed_jobs", args=[index])).status_code == 302
    assert reads_jobs()


def test_a_post_to_the_staff_site_from_outside_staff_keeps_the_live_part(client, caches_on, staff_user, user_factory):
    """Only staff change anything through the staff site: anyone else's POST is sent to the login page, and
    must not be a way to keep the index from being cached."""
    client.force_login(staff_user)
    staff_index(client)
    generation = cache.get(LIVE_GENERATION_KEY)
    client.logout()
    assert client.post(reverse("admin:job_retry", args=[1])).status_code == 302  # to the login page
    client.force_login(user_factory())  # a customer
    assert client.post(reverse("admin:stores_host_add"), {"name": "x"}).status_code == 302
    assert cache.get(LIVE_GENERATION_KEY) == generation

    client.force_login(staff_user)
    client.post(reverse("admin:job_retry", args=[1]))  # staff: the index reads afresh, whatever came of it
    assert cache.get(LIVE_GENERATION_KEY) != generation
