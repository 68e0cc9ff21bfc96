"""Store care (issue #18, items 1-3): checks spread over the interval, incidents from consecutive failing
rounds, notifications (mail and a webhook listener on 127.0.0.1), maintenance that pages nobody, monthly
uptime against SLA targets, and the history's downsampling. The Docker tests at the end run the real checks
against one live WooCommerce store."""

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from provisioning.care.checks import FAILED, OK, SKIPPED, Verdict, certificate
from provisioning.care.models import CheckHourly, CheckResult, CheckRound, Incident
from provisioning.care.selectors import (
    check_latency_recent,
    incidents_open_count,
    sla_breaches,
    store_ids_due,
    store_slot,
    store_uptime_month,
)
from provisioning.care.services import (
    care_settings,
    check_history_downsample,
    store_checks_run,
    store_round_record,
    stores_checks_enqueue_due,
)
from provisioning.services import job_enqueue
from stores.services import store_transition

pytestmark = pytest.mark.django_db

FRONT_DOWN = [("front_page", True, Verdict(FAILED, "/ did not answer: Connection refused"), 3)]
DISK_OVER = [("disk", False, Verdict(FAILED, "12.00 GB used of 10 GB allowed"), 1)]
ALL_OK = [("front_page", True, Verdict(OK, "200"), 40), ("cart", True, Verdict(SKIPPED, "not active"), 2)]


class WebhookListener:
    """A chat tool's incoming webhook, on 127.0.0.1: it keeps every JSON body POSTed to it."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/incidents"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def placed(db):
    """placed(store) -> the store, recorded on a host whose engine never answers, each on a port of its own
    where nothing listens: its rounds really run (and fail fast) without Docker."""
    from stores.models import Host, Store
    from tests.plugins.factories import UNREACHABLE_ENGINE

    host, _ = Host.objects.get_or_create(
        name="care-unreachable",
        defaults={"docker_url": UNREACHABLE_ENGINE, "memory_capacity_mb": 1024, "cpu_capacity": 1},
    )
    ports = iter(range(20901, 20999))

    def place(store):
        Store.objects.filter(pk=store.pk).update(host=host, port=next(ports))
        store.refresh_from_db()
        return store

    return place


@pytest.fixture
def webhook():
    listener = WebhookListener()
    with override_settings(CARE_WEBHOOK_URL=listener.url, CARE_STAFF_EMAILS=["ops@shophosting.test"]):
        yield listener
    listener.close()


def rounds(store, verdicts, count, *, start, capture, step=timedelta(minutes=5)):
    """Record `count` rounds of `verdicts`, `step` apart from `start`, running what they cause after commit."""
    for n in range(count):
        with capture(execute=True):
            store_round_record(store_id=store.pk, checked_at=start + n * step, verdicts=verdicts)
    return start + count * step


# --- Spreading ------------------------------------------------------------------------------------------


def test_a_thousand_stores_spread_evenly_over_the_interval_and_each_keeps_its_slot():
    slots = Counter(store_slot(pk, interval_minutes=5) for pk in range(1, 1001))
    assert set(slots) == {0, 1, 2, 3, 4}
    assert max(slots.values()) - min(slots.values()) < 80, slots  # about 200 each, never all at once
    assert store_slot(42, interval_minutes=5) == store_slot(42, interval_minutes=5)
    slots_15 = Counter(store_slot(pk, interval_minutes=15) for pk in range(1, 1001))
    assert len(slots_15) == 15 and max(slots_15.values()) < 2 * 1000 / 15


def test_each_live_store_is_due_exactly_once_per_interval(store_in_status, placed):
    live = [placed(store_in_status("active")) for _ in range(4)]
    suspended = placed(store_in_status("suspended"))  # checked: its rounds say maintenance
    not_live = store_in_status("failed")
    start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    due = Counter()
    for minute in range(5):
        due.update(store_ids_due(now=start + timedelta(minutes=minute, seconds=30), interval_minutes=5))
    assert due == Counter({store.pk: 1 for store in [*live, suspended]})
    assert not_live.pk not in due


# --- Incidents: threshold, flapping, notifications --------------------------------------------------------


def test_three_failing_rounds_open_one_incident_that_pages_everyone_and_a_passing_round_closes_it(
    recorded_active_store, webhook, django_capture_on_commit_callbacks
):
    store, capture = recorded_active_store, django_capture_on_commit_callbacks
    start = timezone.now() - timedelta(hours=1)
    # Flapping: two failures, a pass, two failures: never three in a row, no incident.
    at = rounds(store, FRONT_DOWN, 2, start=start, capture=capture)
    at = rounds(store, ALL_OK, 1, start=at, capture=capture)
    at = rounds(store, FRONT_DOWN, 2, start=at, capture=capture)
    assert not Incident.objects.exists() and mail.outbox == [] and webhook.received == []

    at = rounds(store, FRONT_DOWN, 1, start=at, capture=capture)  # the third in a row
    incident = Incident.objects.get()
    assert incident.status == Incident.Status.OPEN and incident.affects_uptime and incident.checks == "front_page"
    assert "front page: / did not answer" in incident.summary
    assert incidents_open_count() == 1
    assert sorted((m.to[0], m.subject) for m in mail.outbox) == sorted(
        [
            ("ops@shophosting.test", f"[incident open] {store.domain}: front_page"),
            (store.customer.email, f"{store.domain} is not working as it should"),
        ]
    )
    merchant = next(m for m in mail.outbox if m.to == [store.customer.email])
    assert "What you can do" in merchant.body and reverse("stores:detail", args=[store.pk]) in merchant.body
    assert [event["event"] for event in webhook.received] == ["incident.opened"]
    assert webhook.received[0]["store"]["domain"] == store.domain and store.domain in webhook.received[0]["text"]

    mail.outbox.clear()
    at = rounds(store, FRONT_DOWN, 2, start=at, capture=capture)  # still failing: the same incident, no new mail
    assert Incident.objects.count() == 1 and mail.outbox == []

    rounds(store, ALL_OK, 1, start=at, capture=capture)
    incident.refresh_from_db()
    assert incident.status == Incident.Status.CLOSED and incident.open_for_store is None
    assert incident.closed_at - incident.opened_at == timedelta(minutes=15)
    assert [(e.old_status, e.new_status) for e in incident.events.all()] == [("", "open"), ("open", "closed")]
    assert sorted(m.subject for m in mail.outbox) == [
        f"[incident closed] {store.domain}: front_page",
        f"{store.domain} is working again",
    ]
    assert [event["event"] for event in webhook.received] == ["incident.opened", "incident.closed"]
    assert incidents_open_count() == 0


def test_a_warning_opens_an_incident_that_does_not_count_as_downtime(
    recorded_active_store, django_capture_on_commit_callbacks
):
    store = recorded_active_store
    rounds(
        store, DISK_OVER, 3, start=timezone.now() - timedelta(minutes=20), capture=django_capture_on_commit_callbacks
    )
    incident = Incident.objects.get()
    assert not incident.affects_uptime and incident.checks == "disk"
    now = timezone.now()
    assert store_uptime_month(store, year=now.year, month=now.month).percent == Decimal("100.000")
    assert "The store still answers your customers" in mail.outbox[0].body

    mail.outbox.clear()  # the warning becomes an outage: the same incident, and the merchant is told again
    rounds(store, FRONT_DOWN, 1, start=timezone.now(), capture=django_capture_on_commit_callbacks)
    incident.refresh_from_db()
    assert incident.affects_uptime and incident.checks == "front_page" and Incident.objects.count() == 1
    assert "may not be able to reach your store" in mail.outbox[0].body
    assert incident.events.last().note == "now an outage"


@override_settings(CARE_STAFF_EMAILS=[], CARE_WEBHOOK_URL="http://127.0.0.1:9/nothing-listens")
def test_a_webhook_that_does_not_answer_loses_nothing_else(recorded_active_store, django_capture_on_commit_callbacks):
    rounds(recorded_active_store, FRONT_DOWN, 3, start=timezone.now(), capture=django_capture_on_commit_callbacks)
    assert Incident.objects.get().status == "open" and len(mail.outbox) == 1  # the merchant's mail went


# --- Maintenance ----------------------------------------------------------------------------------------


def test_a_suspended_store_or_one_under_an_operation_is_in_maintenance_and_pages_nobody(
    store_in_status, placed, webhook, django_capture_on_commit_callbacks
):
    suspended = placed(store_in_status("suspended"))
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            found = store_checks_run(store_id=suspended.pk)
        assert found.outcome == CheckRound.Outcome.MAINTENANCE and found.note == "the store is suspended"
        assert not found.results.exists()  # nothing probed a store the platform stopped

    busy = placed(store_in_status("active"))
    with django_capture_on_commit_callbacks(execute=False):  # recorded, not run: it stays queued
        job = job_enqueue(store_id=busy.pk, kind="restart", actor=None)
    for _ in range(4):
        found = store_checks_run(store_id=busy.pk)
        assert found.outcome == CheckRound.Outcome.MAINTENANCE and f"job #{job.pk}" in found.note
    assert not Incident.objects.exists() and mail.outbox == [] and webhook.received == []


def test_an_incident_of_a_store_taken_out_of_service_is_closed_without_paging(
    recorded_active_store, django_capture_on_commit_callbacks
):
    store = recorded_active_store
    rounds(store, FRONT_DOWN, 3, start=timezone.now(), capture=django_capture_on_commit_callbacks)
    mail.outbox.clear()
    stores_checks_enqueue_due()  # the minute job: the store is still active, the incident stays
    assert Incident.objects.get().status == Incident.Status.OPEN
    store_transition(store_id=store.pk, to="suspended")
    with django_capture_on_commit_callbacks(execute=True):
        stores_checks_enqueue_due()
    incident = Incident.objects.get()
    assert incident.status == Incident.Status.CLOSED and mail.outbox == []
    assert incident.events.last().note == "the store is suspended: no longer checked as live"


def test_maintenance_rounds_break_a_run_of_failures(recorded_active_store, django_capture_on_commit_callbacks):
    store, capture = recorded_active_store, django_capture_on_commit_callbacks
    at = rounds(store, FRONT_DOWN, 2, start=timezone.now() - timedelta(hours=1), capture=capture)
    with capture(execute=True):
        store_round_record(store_id=store.pk, checked_at=at, verdicts=[], maintenance="restart (job #1)")
    rounds(store, FRONT_DOWN, 2, start=at + timedelta(minutes=5), capture=capture)
    assert not Incident.objects.exists()


# --- Uptime ---------------------------------------------------------------------------------------------


def test_monthly_uptime_counts_maintenance_apart_and_sla_plans_show_their_target_and_breaches(
    store_in_status, woo_plan, django_capture_on_commit_callbacks
):
    from billing.models import Plan

    sla_plan = Plan.objects.filter(sla_uptime=True, platform=woo_plan.platform).first()
    assert sla_plan is not None and sla_plan.sla_target_percent == Decimal("99.900")
    sla_store = store_in_status("active", plan=sla_plan)
    plain_store = store_in_status("active")
    november = datetime(2026, 11, 1, tzinfo=UTC)
    for store in (sla_store, plain_store):
        # 997 rounds up, 3 down, 20 in maintenance: 99.7 % of the judged rounds.
        CheckRound.objects.bulk_create(  # the history of a good month, as data: the rounds' logic is tested above
            CheckRound(store=store, checked_at=november + timedelta(minutes=5 * n), outcome="up") for n in range(997)
        )
        rounds(store, FRONT_DOWN, 3, start=november + timedelta(days=3), capture=django_capture_on_commit_callbacks)
        for n in range(20):
            store_round_record(
                store_id=store.pk, checked_at=november + timedelta(days=5, minutes=n), verdicts=[], maintenance="update"
            )
    # A round of December is not November's.
    rounds(
        sla_store, FRONT_DOWN, 1, start=datetime(2026, 12, 1, tzinfo=UTC), capture=django_capture_on_commit_callbacks
    )

    sla = store_uptime_month(sla_store, year=2026, month=11)
    assert (sla.up, sla.down, sla.maintenance) == (997, 3, 20)
    assert sla.percent == Decimal("99.700") and sla.target == Decimal("99.900") and sla.breached
    assert sla.down_minutes == 15 and sla.maintenance_minutes == 100
    plain = store_uptime_month(plain_store, year=2026, month=11)
    assert plain.percent == Decimal("99.700") and plain.target is None and not plain.breached
    assert [store.pk for store, _ in sla_breaches(year=2026, month=11)] == [sla_store.pk]
    assert store_uptime_month(plain_store, year=2026, month=10).percent is None  # no rounds: no figure
    with pytest.raises(ValueError, match="month must be from 1 to 12, not 13"):
        store_uptime_month(plain_store, year=2026, month=13)


# --- History --------------------------------------------------------------------------------------------


def test_rounds_past_the_history_are_folded_into_hours_and_uptime_is_unchanged(
    recorded_active_store, django_capture_on_commit_callbacks
):
    store = recorded_active_store
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    old = now - timedelta(days=95)  # 2026-09-01 12:00
    rounds(store, ALL_OK, 10, start=old, capture=django_capture_on_commit_callbacks)  # 12:00 .. 12:45
    rounds(store, FRONT_DOWN, 2, start=old + timedelta(minutes=50), capture=django_capture_on_commit_callbacks)
    store_round_record(store_id=store.pk, checked_at=old + timedelta(hours=1), verdicts=[], maintenance="x")
    recent_at = now - timedelta(days=10)
    rounds(store, ALL_OK, 3, start=recent_at, capture=django_capture_on_commit_callbacks)
    before = store_uptime_month(store, year=2026, month=9)

    assert check_history_downsample(now=now) == 13
    assert CheckRound.objects.filter(store=store).count() == 3  # the recent ones stay raw
    assert not CheckResult.objects.filter(round__checked_at__lt=now - timedelta(days=90)).exists()
    hours = list(CheckHourly.objects.filter(store=store).order_by("hour").values("hour", "up", "down", "maintenance"))
    assert hours == [
        {"hour": old, "up": 10, "down": 2, "maintenance": 0},
        {"hour": old + timedelta(hours=1), "up": 0, "down": 0, "maintenance": 1},
    ]
    after = store_uptime_month(store, year=2026, month=9)
    assert (after.up, after.down, after.maintenance, after.percent) == (
        before.up, before.down, before.maintenance, before.percent,
    )  # fmt: skip
    # Repeatable: a later run adds newly old rounds of a folded hour to its counts.
    store_round_record(store_id=store.pk, checked_at=old + timedelta(minutes=59), verdicts=ALL_OK)
    assert check_history_downsample(now=now) == 1
    assert CheckHourly.objects.get(store=store, hour=old).up == 11
    assert check_history_downsample(now=now) == 0


def test_latency_is_recorded_per_check_for_a_metrics_collector(recorded_active_store):
    store_round_record(store_id=recorded_active_store.pk, checked_at=timezone.now(), verdicts=ALL_OK, latency_ms=50)
    assert check_latency_recent() == {"front_page": 40.0, "cart": 2.0}


# --- Settings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("CARE_CHECK_INTERVAL_MINUTES", 0, "CARE_CHECK_INTERVAL_MINUTES must be a whole number from 1 to 1440, not 0"),
        ("CARE_INCIDENT_THRESHOLD", "3", "CARE_INCIDENT_THRESHOLD must be a whole number from 1 to 100, not '3'"),
        ("CARE_HISTORY_DAYS", -1, "CARE_HISTORY_DAYS must be a whole number from 1 to 3650, not -1"),
        ("CARE_CERTIFICATE_MIN_DAYS", 90, "CARE_CERTIFICATE_MIN_DAYS must be a whole number from 0 to 89, not 90"),
        ("CARE_PAGE_BUDGET_SECONDS", 0, "CARE_PAGE_BUDGET_SECONDS must be more than 0 and at most 60, not 0"),
        ("CARE_WEBHOOK_URL", "hooks.example/x", "CARE_WEBHOOK_URL must be an http:// or https:// URL"),
    ],
)
def test_a_bad_setting_stops_the_checks_with_a_message_naming_it(recorded_active_store, setting, value, message):
    with override_settings(**{setting: value}):
        with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace("+", r"\+")):
            care_settings()
        with pytest.raises(ImproperlyConfigured, match=setting):
            store_checks_run(store_id=recorded_active_store.pk)
    assert not CheckRound.objects.exists()


# --- Pages ----------------------------------------------------------------------------------------------


def test_the_store_page_shows_status_incidents_and_uptime_and_staff_see_open_incidents(
    client, recorded_active_store, staff_user, django_capture_on_commit_callbacks
):
    store = recorded_active_store
    client.force_login(store.customer)
    page = client.get(reverse("stores:detail", args=[store.pk])).content.decode()
    assert 'data-care-state="unknown"' in page and "Not checked yet" in page

    rounds(
        store, FRONT_DOWN, 3, start=timezone.now() - timedelta(minutes=20), capture=django_capture_on_commit_callbacks
    )
    page = client.get(reverse("stores:detail", args=[store.pk])).content.decode()
    assert 'data-care-state="down"' in page and 'id="incident-open"' in page
    assert 'data-incident-status="open"' in page and "Uptime this month: <strong>0.000%</strong>" in page
    assert "your plan&#x27;s target" not in page and "your plan's target" not in page  # not an SLA plan

    client.force_login(staff_user)
    index = client.get(reverse("admin:index")).content.decode()
    incident = Incident.objects.get()
    assert f'data-incident="{incident.pk}"' in index and store.domain in index
    assert client.get(reverse("admin:provisioning_incident_change", args=[incident.pk])).status_code == 200


def test_the_check_round_is_quick_and_honest_against_a_store_that_does_not_answer(recorded_active_store, placed):
    store = placed(recorded_active_store)
    started = time.monotonic()
    found = store_checks_run(store_id=store.pk)
    assert time.monotonic() - started < 10
    results = {r.check_name: (r.result, r.message) for r in found.results.all()}
    assert found.outcome == CheckRound.Outcome.DOWN
    assert results["front_page"][0] == FAILED and "did not answer" in results["front_page"][1]
    assert results["containers"][0] == FAILED  # the engine does not answer: a failure, not a crash
    assert results["certificate"] == (SKIPPED, "no certificate asked for")
    assert results["disk"] == (SKIPPED, "not measured yet")
    assert results["backup"] == (SKIPPED, "the first backup is not due yet")
    assert results["backup_verification"][0] == SKIPPED


def test_the_minute_job_queues_the_stores_due_once_and_a_real_worker_runs_their_rounds(
    store_in_status, placed, django_capture_on_commit_callbacks
):
    import django_rq
    from rq import SimpleWorker

    queue = django_rq.get_queue("default")
    queue.empty()
    store = placed(store_in_status("suspended"))  # its round is quick: maintenance, nothing probed
    slot = store_slot(store.pk, interval_minutes=5)
    minute = datetime(2026, 12, 1, 10, slot, 30, tzinfo=UTC)  # 10:00 is minute 0 of a 5-minute interval
    assert store.pk in stores_checks_enqueue_due(now=minute)
    assert store.pk in stores_checks_enqueue_due(now=minute)  # again: still queued, not queued twice
    assert queue.job_ids.count(f"care-checks-{store.pk}") == 1
    assert store.pk not in stores_checks_enqueue_due(now=minute + timedelta(minutes=1))

    django_rq.get_worker("default", worker_class=SimpleWorker).work(burst=True)
    assert CheckRound.objects.get(store=store).outcome == CheckRound.Outcome.MAINTENANCE


# --- On a live store, on the real engine ------------------------------------------------------------------


@pytest.fixture
def care_store(
    user_factory, woo_plan, store_images, clean_test_stores, django_capture_on_commit_callbacks, run_provisioning_worker
):
    """One live WooCommerce store (the local image: WordPress without the WooCommerce plugin), for the whole
    story of the Docker test below."""
    from provisioning.orders import store_order_paid
    from stores.models import Store
    from stores.services import store_create

    store = store_create(
        customer=user_factory(email="care@example.com"), plan=woo_plan, domain="care1.test", site_title="Cared For"
    )
    with django_capture_on_commit_callbacks(execute=True):
        store_order_paid(store_id=store.pk)
    run_provisioning_worker()
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE, store.jobs.last().error
    return store


def results_of(found: CheckRound) -> dict[str, tuple[str, str]]:
    return {r.check_name: (r.result, r.message) for r in found.results.all()}


@pytest.mark.docker
@override_settings(CARE_CERTIFICATE_MIN_DAYS=0)  # pebble's test certificates live one hour
def test_a_stopped_web_container_opens_an_incident_that_closes_when_it_runs_again_and_suspension_pages_nobody(
    care_store, webhook, client, django_capture_on_commit_callbacks, run_provisioning_worker
):
    from provisioning import docker_client
    from provisioning.steps import wait_http
    from stores.models import Store

    store, capture = care_store, django_capture_on_commit_callbacks
    web = f"{store.slug}-web"

    def check():
        with capture(execute=True):
            return store_checks_run(store_id=store.pk)

    # Healthy: every check that applies passes; the cart honestly does not apply (no WooCommerce plugin here).
    healthy = check()
    found = results_of(healthy)
    assert healthy.outcome == CheckRound.Outcome.UP, found
    assert found["front_page"][0] == OK and "Cared For" in found["front_page"][1]
    assert found["admin_login"] == (OK, "/wp-login.php shows its login form")
    assert found["cart"] == (SKIPPED, "the WooCommerce plugin is not active in this store")
    assert found["containers"] == (OK, "every container runs")
    # A real certificate for the store's name, from pebble, which issues them for one hour.
    assert store.tls_status == Store.TLS.ISSUED and found["certificate"][0] == OK, found["certificate"]
    with override_settings(CARE_CERTIFICATE_MIN_DAYS=14):
        assert certificate(store) == Verdict(FAILED, "the certificate expires in 0 days")

    # The web container stops: the threshold's third failing round opens the incident and pages everyone.
    assert docker_client.container_stop(name=web, timeout=2)
    for n in range(3):
        down = check()
        assert down.outcome == CheckRound.Outcome.DOWN
        assert Incident.objects.filter(store=store).exists() == (n == 2)
    found = results_of(down)
    assert found["front_page"][0] == FAILED and "did not answer" in found["front_page"][1]
    assert found["containers"] == (FAILED, "web is exited")
    incident = Incident.objects.get(store=store, status=Incident.Status.OPEN)
    assert incident.affects_uptime and "front_page" in incident.checks and "containers" in incident.checks
    assert {m.to[0] for m in mail.outbox} == {store.customer.email, "ops@shophosting.test"}
    assert [event["event"] for event in webhook.received] == ["incident.opened"]
    client.force_login(store.customer)
    page = client.get(reverse("stores:detail", args=[store.pk])).content.decode()
    assert 'data-care-state="down"' in page and "web is exited" in page

    # It runs again: the next round passes and closes the incident; the month's uptime shows the outage.
    mail.outbox.clear()
    docker_client.container_start(name=web)
    wait_http(store, lambda message: None, timeout=30)
    assert check().outcome == CheckRound.Outcome.UP
    incident.refresh_from_db()
    assert incident.status == Incident.Status.CLOSED
    assert f"{store.domain} is working again" in [m.subject for m in mail.outbox]
    assert [event["event"] for event in webhook.received] == ["incident.opened", "incident.closed"]
    now = timezone.now()
    uptime = store_uptime_month(store, year=now.year, month=now.month)
    assert (uptime.up, uptime.down, uptime.percent) == (2, 3, Decimal("40.000"))
    page = client.get(reverse("stores:detail", args=[store.pk])).content.decode()
    assert 'data-care-state="up"' in page and "Uptime this month: <strong>40.000%</strong>" in page

    # Suspended by the platform: its containers stop, and that is maintenance, not an outage.
    mail.outbox.clear()
    with capture(execute=True):
        job_enqueue(store_id=store.pk, kind="suspend", actor=None)
    run_provisioning_worker()
    store.refresh_from_db()
    assert store.status == Store.Status.SUSPENDED
    for _ in range(4):
        assert check().outcome == CheckRound.Outcome.MAINTENANCE
    assert Incident.objects.filter(store=store).count() == 1 and mail.outbox == []
    assert len(webhook.received) == 2
    uptime = store_uptime_month(store, year=now.year, month=now.month)
    assert (uptime.up, uptime.down, uptime.maintenance, uptime.percent) == (2, 3, 4, Decimal("40.000"))
