"""The Prometheus endpoint: who may scrape it, what the series say about real rows, that a scrape stays cheap
with many stores, and (Docker) a provisioning job seen running, then succeeded."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from backups.models import BackupRun, RunStatus
from provisioning import acme_client
from provisioning.models import ProvisioningJob
from shophosting.core.scrape_access import bearer_token_from_setting, networks_from_setting
from stores.models import Store
from stores.selectors import GB
from stores.services import store_disk_record
from tests.conftest import ROOT
from tests.test_provisioning_workers import committed, start_worker, wait_for  # noqa: F401 (fixtures)

TOKEN = "metrics-token-for-tests-0123456789abcdef"
ALLOWED_NETWORK = "10.20.0.0/16"
HOUR = 3600


@pytest.fixture
def metrics_access(settings):
    settings.METRICS_ALLOWED_NETWORKS = [ALLOWED_NETWORK]
    settings.METRICS_BEARER_TOKEN = TOKEN
    settings.TRUSTED_PROXY_COUNT = 0


def scrape(client, **extra) -> dict[tuple[str, frozenset], float]:
    """{(sample name, its labels): value} of one scrape with the token; fails unless it answers 200."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **extra)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples) -> set[str]:
    return {name for name, _labels in samples}


def job_record(store, kind: str, status: str, *, seconds: float | None = None, ago: float = 60) -> ProvisioningJob:
    started = timezone.now() - timedelta(seconds=ago) if status != "queued" else None
    finished = started + timedelta(seconds=seconds) if seconds is not None else None
    return ProvisioningJob.objects.create(
        store=store, kind=kind, status=status, started_at=started, finished_at=finished
    )


def certificate_write(domain: str, *, days_left: int) -> None:
    """A real certificate file where acme_client keeps the store's, valid for `days_left` more days."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = timezone.now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days_left, hours=1))
        .sign(key, hashes.SHA256())
    )
    path = acme_client.certificate_paths(domain).fullchain_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


@pytest.mark.django_db
def test_a_scrape_reports_jobs_stores_backups_disk_and_certificates(
    client, metrics_access, settings, tmp_path, store_in_status
):
    settings.TLS_CERT_DIR = str(tmp_path / "tls")
    settings.BACKUP_INTERVAL_HOURS = 6  # overdue after 12 h
    now = timezone.now()
    measured = store_in_status("active")
    fresh = store_in_status("active")
    suspended = store_in_status("suspended")
    failed = store_in_status("failed")

    job_record(measured, "provision", "succeeded", seconds=45)
    job_record(measured, "backup", "succeeded", seconds=3)
    job_record(measured, "backup", "succeeded", seconds=700, ago=2000)
    job_record(failed, "provision", "failed", seconds=200, ago=500)
    job_record(failed, "provision", "failed", seconds=None)  # reaped before it started: counted, no duration
    ProvisioningJob.objects.filter(finished_at__isnull=True, status="failed").update(started_at=None, finished_at=now)
    job_record(measured, "restart", "queued")
    job_record(fresh, "backup", "running")

    # The measured store's last success is 20 h old (overdue); a newer failure does not count. The fresh store
    # has no backup, but was created just now: not yet overdue.
    BackupRun.objects.create(
        store=measured, kind="scheduled", status=RunStatus.SUCCEEDED, finished_at=now - timedelta(hours=20)
    )
    BackupRun.objects.create(store=measured, kind="scheduled", status=RunStatus.FAILED, finished_at=now)
    BackupRun.objects.create(kind="system", status=RunStatus.SUCCEEDED, finished_at=now - timedelta(hours=2))

    store_disk_record(store_id=measured.pk, used_bytes=2 * GB, measured_at=now)
    store_disk_record(store_id=failed.pk, used_bytes=GB, measured_at=now)  # not live: no series

    certificate_write(measured.proxy_key, days_left=10)
    Store.objects.filter(pk__in=[measured.pk, suspended.pk]).update(tls_status=Store.TLS.ISSUED)  # suspended: no file

    samples = scrape(client, REMOTE_ADDR="203.0.113.7")  # the token alone suffices, from anywhere

    # Jobs: active ones now, finished ones as counters, durations as a histogram from the database.
    assert value(samples, "shophosting_jobs_active", kind="restart", status="queued") == 1
    assert value(samples, "shophosting_jobs_active", kind="backup", status="running") == 1
    assert value(samples, "shophosting_jobs_finished_total", kind="provision", outcome="succeeded") == 1
    assert value(samples, "shophosting_jobs_finished_total", kind="provision", outcome="failed") == 2
    assert value(samples, "shophosting_jobs_finished_total", kind="backup", outcome="succeeded") == 2
    bucket = "shophosting_job_duration_seconds_bucket"
    assert value(samples, bucket, kind="provision", outcome="succeeded", le="30.0") == 0
    assert value(samples, bucket, kind="provision", outcome="succeeded", le="60.0") == 1
    assert value(samples, bucket, kind="backup", outcome="succeeded", le="5.0") == 1
    assert value(samples, bucket, kind="backup", outcome="succeeded", le="600.0") == 1
    assert value(samples, bucket, kind="backup", outcome="succeeded", le="+Inf") == 2
    assert value(samples, "shophosting_job_duration_seconds_count", kind="backup", outcome="succeeded") == 2
    assert value(samples, "shophosting_job_duration_seconds_sum", kind="backup", outcome="succeeded") == 703
    # The reaped job never started: counted as failed, but it has no duration.
    assert value(samples, "shophosting_job_duration_seconds_count", kind="provision", outcome="failed") == 1

    # Stores by status, every status present.
    assert value(samples, "shophosting_stores", status="active") == 2
    assert value(samples, "shophosting_stores", status="suspended") == 1
    assert value(samples, "shophosting_stores", status="failed") == 1
    assert value(samples, "shophosting_stores", status="deleted") == 0

    # Backups, aggregated.
    assert 20 * HOUR <= value(samples, "shophosting_store_backup_oldest_age_seconds") < 20 * HOUR + 60
    assert value(samples, "shophosting_stores_backup_overdue") == 1
    assert 2 * HOUR <= value(samples, "shophosting_system_backup_age_seconds") < 2 * HOUR + 60

    # Disk, per live store, by id.
    assert value(samples, "shophosting_store_disk_bytes", store=str(measured.pk)) == 2 * GB
    allowance = measured.plan.disk_allowance_gb * GB
    assert value(samples, "shophosting_store_disk_allowance_bytes", store=str(measured.pk)) == allowance
    assert ("shophosting_store_disk_bytes", frozenset({("store", str(failed.pk))})) not in samples

    # Certificates: the soonest has 10 days left; it and the suspended store's missing file are expiring.
    soonest = value(samples, "shophosting_tls_certificate_soonest_expiry_seconds")
    assert 10 * 24 * HOUR <= soonest <= 10 * 24 * HOUR + HOUR
    assert value(samples, "shophosting_tls_certificates_expiring") == 2

    # Every queue is reported, and every group was read.
    for queue in settings.RQ_QUEUES:
        for state in ("queued", "started", "scheduled", "failed"):
            assert ("shophosting_rq_queue_jobs", frozenset({("queue", queue), ("state", state)})) in samples
    collectors = {"jobs", "queues", "stores", "backups", "disk", "certificates", "webhooks"}
    assert {c: value(samples, "shophosting_metrics_collector_up", collector=c) for c in collectors} == dict.fromkeys(
        collectors, 1
    )
    assert all(name.startswith("shophosting_") for name in names(samples))


@pytest.mark.django_db
def test_stripe_webhook_deliveries_by_type_and_outcome(client, metrics_access, priced_plan, stripe_api, stripe_webhook):
    from djstripe.models import WebhookEventTrigger

    from tests.billing_helpers import paid_signup

    paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    forged = stripe_webhook.post(
        stripe_api.event("customer.deleted", {"id": "cus_forged"}), secret="whsec_not_the_endpoint_secret"
    )
    assert forged.status_code == 400
    # A signed delivery whose processing raised, as dj-stripe keeps it: no Event row (so a redelivery is
    # processed afresh), the body and the exception (tests/test_billing_trust.py makes one through Stripe).
    WebhookEventTrigger.objects.create(
        remote_ip="127.0.0.1",
        headers={},
        body=json.dumps(stripe_api.event("invoice.paid", {"id": "in_1"})),
        valid=True,
        processed=False,
        exception="StripeError",
    )
    WebhookEventTrigger.objects.create(  # not JSON (it would not have passed dj-stripe): no type to read
        remote_ip="127.0.0.1", headers={}, body="not json", valid=True, processed=False, exception="ValueError"
    )

    samples = scrape(client)

    deliveries = "shophosting_stripe_webhooks_total"
    assert value(samples, deliveries, type="checkout.session.completed", outcome="processed") == 1
    # A refused delivery's type is never taken from its unverified body.
    assert value(samples, deliveries, type="unknown", outcome="invalid") == 1
    assert value(samples, deliveries, type="invoice.paid", outcome="failed") == 1
    assert value(samples, deliveries, type="unknown", outcome="failed") == 1
    assert not any(dict(labels).get("type") == "customer.deleted" for _name, labels in samples)


@pytest.mark.django_db
def test_only_allowed_addresses_or_the_token_may_scrape(
    client, metrics_access, settings, django_assert_max_num_queries
):
    def status(**extra) -> int:
        response = client.get("/metrics", **extra)
        if response.status_code != 200:
            assert b"shophosting_" not in response.content  # a refusal reveals nothing
        return response.status_code

    # A refusal is the site's own "page not found", at the cost of any missing page: no metric is read.
    client.get("/no-such-page/")  # the first 404 warms the site's caches
    with CaptureQueriesContext(connection) as missing_page:
        assert client.get("/no-such-page/", REMOTE_ADDR="203.0.113.7").status_code == 404
    for refused in (
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong-token"},
        {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"},
        {"HTTP_AUTHORIZATION": f"Bearer {TOKEN[:-1]}"},
        {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"},
    ):
        with django_assert_max_num_queries(len(missing_page)):
            assert status(REMOTE_ADDR="203.0.113.7", **refused) == 404
    assert status(REMOTE_ADDR="10.20.3.4") == 200
    assert status(REMOTE_ADDR="::ffff:10.20.3.4") == 200  # IPv4 on a dual-stack socket
    assert status(REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=f"Bearer {TOKEN}") == 200
    assert client.post("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 405

    # Behind one proxy (nginx): the client is the entry it appended; what the client wrote before it is ignored.
    settings.TRUSTED_PROXY_COUNT = 1
    assert status(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.20.3.4") == 200
    assert status(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.20.3.4, 203.0.113.7") == 404
    # A request with no proxy's header came straight from its client (shophosting.core.client_ip).
    assert status(REMOTE_ADDR="10.20.3.4") == 200

    # Nothing configured: closed to everyone, loopback included.
    settings.TRUSTED_PROXY_COUNT = 0
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.METRICS_BEARER_TOKEN = ""
    assert status(REMOTE_ADDR="127.0.0.1") == 404
    assert status(REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer ") == 404


def test_bad_access_settings_stop_the_start_up_naming_the_variable():
    assert networks_from_setting("X", ["10.0.0.0/8", " 192.0.2.7 ", "", "2001:db8::/32"]) == [
        "10.0.0.0/8",
        "192.0.2.7/32",
        "2001:db8::/32",
    ]
    with pytest.raises(ImproperlyConfigured, match=r"METRICS_ALLOWED_NETWORKS: '10.0.0.5/24' is not a network"):
        networks_from_setting("METRICS_ALLOWED_NETWORKS", ["10.0.0.5/24"])
    with pytest.raises(ImproperlyConfigured, match="METRICS_ALLOWED_NETWORKS: 'prometheus.internal'"):
        networks_from_setting("METRICS_ALLOWED_NETWORKS", ["prometheus.internal"])
    with pytest.raises(ImproperlyConfigured, match="METRICS_BEARER_TOKEN must be at least 32 characters"):
        bearer_token_from_setting("METRICS_BEARER_TOKEN", "short")
    assert bearer_token_from_setting("METRICS_BEARER_TOKEN", "") == ""

    # And at start-up: the process stops with the variable's name.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shophosting.settings.test"}
    env["METRICS_ALLOWED_NETWORKS"] = "10.1.2.300"
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert started.returncode != 0
    assert "ImproperlyConfigured: METRICS_ALLOWED_NETWORKS: '10.1.2.300' is not a network" in started.stderr


@pytest.mark.django_db
def test_a_scrape_takes_the_same_few_queries_for_3_stores_and_for_30(
    client, metrics_access, store_in_status, django_assert_max_num_queries
):
    def queries_of_a_scrape() -> int:
        with CaptureQueriesContext(connection) as captured:
            scrape(client, REMOTE_ADDR="10.20.0.1")
        return len(captured)

    def add_stores(count: int) -> None:
        now = timezone.now()
        for _ in range(count):
            store = store_in_status("active")
            store_disk_record(store_id=store.pk, used_bytes=GB, measured_at=now)
            job_record(store, "provision", "succeeded", seconds=50)
            BackupRun.objects.create(store=store, kind="scheduled", status=RunStatus.SUCCEEDED, finished_at=now)

    add_stores(3)
    few = queries_of_a_scrape()
    add_stores(27)
    # Jobs 2 (counts, durations), stores 1, backups 2 (stores, system), disk 2 (plans, stores), certificates 1,
    # webhooks 1, care 2 (incidents, check latency); queues are read from Redis. Whatever the number of stores.
    with django_assert_max_num_queries(few):
        samples = scrape(client, REMOTE_ADDR="10.20.0.1")
    assert few <= 11
    assert value(samples, "shophosting_stores", status="active") == 30


@pytest.mark.docker
def test_a_provisioning_job_shows_up_queued_then_running_then_succeeded(
    committed,  # noqa: F811
    store_images,
    clean_test_stores,
    start_worker,  # noqa: F811
    client,
    metrics_access,
):
    """A real order on the real engine, watched only through /metrics (scraped as Prometheus would: from
    outside the worker, on committed data)."""
    from provisioning.orders import store_order_paid
    from stores.services import store_create

    def count(samples, name: str, **labels) -> float:
        return samples.get((name, frozenset(labels.items())), 0)

    def provisions(samples, status: str) -> float:
        name = "shophosting_jobs_active" if status in ("queued", "running") else "shophosting_jobs_finished_total"
        label = "status" if status in ("queued", "running") else "outcome"
        return count(samples, name, kind="provision", **{label: status})

    store = store_create(
        customer=committed["customer"](), plan=committed["plan"], domain="metrics.test", site_title="Metrics Shop"
    )
    before = scrape(client)
    job = store_order_paid(store_id=store.pk)
    queued = scrape(client)
    assert provisions(queued, "queued") == provisions(before, "queued") + 1
    waiting = count(queued, "shophosting_rq_queue_jobs", queue="provisioning", state="queued")
    assert waiting >= 1

    start_worker()
    seen = {}

    def running() -> bool:
        seen["running"] = scrape(client)
        return provisions(seen["running"], "running") == 1

    wait_for(running, 60, "the job to show up as running", every=0.05)
    assert provisions(seen["running"], "queued") == provisions(before, "queued")
    wait_for(lambda: ProvisioningJob.objects.get(pk=job.pk).status not in ProvisioningJob.ACTIVE, 180, "the job to end")
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error

    done = scrape(client)
    assert provisions(done, "running") == 0
    assert provisions(done, "succeeded") == provisions(before, "succeeded") + 1
    durations = "shophosting_job_duration_seconds_count"
    ran = count(done, durations, kind="provision", outcome="succeeded") - count(
        before, durations, kind="provision", outcome="succeeded"
    )
    assert ran == 1
    assert (
        count(done, "shophosting_stores", status="active") == count(before, "shophosting_stores", status="active") + 1
    )


@pytest.mark.django_db
def test_a_source_that_cannot_be_read_is_reported_and_the_others_still_answer(
    client, metrics_access, settings, store_in_status, caplog
):
    store_in_status("active")
    # Redis where nothing listens (the discard port): the queues cannot be read.
    settings.RQ_QUEUES = {
        name: {**config, "URL": "redis://127.0.0.1:9/0"} for name, config in settings.RQ_QUEUES.items()
    }

    samples = scrape(client)

    assert value(samples, "shophosting_metrics_collector_up", collector="queues") == 0
    assert "shophosting_rq_queue_jobs" not in names(samples)
    assert value(samples, "shophosting_metrics_collector_up", collector="stores") == 1
    assert value(samples, "shophosting_stores", status="active") == 1
    assert "the queues series could not be read" in caplog.text


def test_open_incidents_by_kind_and_recent_check_latency(client, metrics_access, store_in_status):
    from provisioning.care.models import CheckResult, CheckRound, Incident

    now = timezone.now()
    down, degraded, recovered = (store_in_status("active") for _ in range(3))
    Incident.objects.create(
        store=down, checks="front_page", summary="down", affects_uptime=True, opened_at=now, open_for_store=down.pk
    )
    Incident.objects.create(
        store=degraded, checks="disk", summary="full", affects_uptime=False, opened_at=now, open_for_store=degraded.pk
    )
    Incident.objects.create(
        store=recovered,
        checks="front_page",
        summary="was down",
        affects_uptime=True,
        opened_at=now,
        status=Incident.Status.CLOSED,
        closed_at=now,
    )
    Incident.objects.create(
        component="workers.default", checks="workers.default", summary="stale", opened_at=now, open_for_component="w"
    )
    for store, front_page_ms, ago in ((down, 300, 1), (degraded, 100, 2), (recovered, 9000, 60)):
        round_ = CheckRound.objects.create(
            store=store, checked_at=now - timedelta(minutes=ago), outcome=CheckRound.Outcome.UP
        )
        CheckResult.objects.create(round=round_, check_name="front_page", result="ok", latency_ms=front_page_ms)

    samples = scrape(client)
    assert value(samples, "shophosting_incidents_open", kind="outage") == 1  # the closed one is not counted
    assert value(samples, "shophosting_incidents_open", kind="warning") == 1
    assert value(samples, "shophosting_incidents_open", kind="platform") == 1  # not counted as a store's warning
    # The mean of the last 15 minutes: the hour-old 9 s round is outside the window.
    assert value(samples, "shophosting_check_latency_seconds", check="front_page") == pytest.approx(0.2)
    assert value(samples, "shophosting_metrics_collector_up", collector="care") == 1
