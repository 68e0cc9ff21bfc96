"""Platform checks (provisioning/care/platform.py): the backup repository's `restic check`, each queue's worker
heartbeats and each host's Docker engine are recorded, open a staff incident when they keep failing (staff
mail and webhook, no merchant mail) and close it when they pass again."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.urls import reverse
from rq import Worker
from rq.utils import utcformat

from provisioning.care.models import Incident, PlatformCheck
from provisioning.care.platform import platform_check_record
from shophosting import health
from stores.models import Host
from tests.plugins.ci import require_tool
from tests.test_store_care import WebhookListener

pytestmark = pytest.mark.django_db
STAFF = "ops@shophosting.test"


@pytest.fixture
def staff_alerts(settings):
    listener = WebhookListener()
    settings.CARE_STAFF_EMAILS = [STAFF]
    settings.CARE_WEBHOOK_URL = listener.url
    yield listener
    listener.close()


def platform_incident(component: str) -> Incident | None:
    return Incident.objects.filter(component=component).order_by("-pk").first()


# --- The repository check ---------------------------------------------------------------------------------


@pytest.fixture
def small_repository(settings, tmp_path):
    """A restic repository of its own with one snapshot (the session's shared one must stay whole)."""
    from backups import restic

    require_tool(settings.RESTIC_BINARY)
    settings.RESTIC_REPOSITORY = str(tmp_path / "repo")
    settings.RESTIC_PASSWORD_FILE = str(tmp_path / "password")
    settings.RESTIC_CACHE_DIR = str(tmp_path / "cache")
    (tmp_path / "password").write_text("test-only restic password\n")
    assert restic.repository_init() is True
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "db.sql").write_text("insert into t values (1);\n" * 2000)
    restic.backup(["db.sql"], cwd=tmp_path / "staging", tags=["platform-check-test"])
    return Path(settings.RESTIC_REPOSITORY)


@pytest.mark.docker  # restic runs under the shared lock
def test_a_corrupt_pack_fails_the_repository_check_opens_a_staff_incident_and_a_passing_check_closes_it(
    small_repository, staff_alerts, client, staff_user, django_capture_on_commit_callbacks
):
    from backups import jobs as backup_jobs

    packs = sorted(p for p in (small_repository / "data").rglob("*") if p.is_file())
    assert packs, "the snapshot wrote no pack file"
    pack = packs[0]
    whole = pack.read_bytes()
    pack.write_bytes(whole[: len(whole) // 2])  # a truncated pack: its size no longer matches the index

    with django_capture_on_commit_callbacks(execute=True):
        assert backup_jobs.repository_check() is False  # the weekly job (shophosting/cron.py)

    check = PlatformCheck.objects.get(component="backups.repository")
    assert check.ok is False and check.output and check.duration_ms > 0
    incident = platform_incident("backups.repository")
    assert incident.status == Incident.Status.OPEN and incident.store is None
    assert [m.to for m in mail.outbox] == [[STAFF]]  # staff only: no store, no merchant
    assert "platform: backups.repository" in mail.outbox[0].subject
    assert staff_alerts.received[-1]["event"] == "incident.opened"
    assert staff_alerts.received[-1]["component"] == "backups.repository"

    client.force_login(staff_user)
    page = client.get(reverse("admin:system_health")).content.decode()
    assert 'id="health-repository"' in page and "restic check failed" in page
    index = client.get(reverse("admin:index")).content.decode()
    assert "platform: backups.repository" in index

    pack.write_bytes(whole)
    with django_capture_on_commit_callbacks(execute=True):
        assert backup_jobs.repository_check() is True

    incident.refresh_from_db()
    assert incident.status == Incident.Status.CLOSED and incident.open_for_component is None
    assert [m.to for m in mail.outbox] == [[STAFF], [STAFF]]
    assert staff_alerts.received[-1]["event"] == "incident.closed"
    page = client.get(reverse("admin:system_health")).content.decode()
    assert "restic check failed" not in page and "Repository check (<code>restic check</code>): <span" in page


# --- The minute's round: workers and Docker engines -------------------------------------------------------


@pytest.fixture
def stale_worker():
    """A worker of the default queue registered as rq does it, whose heartbeat is 10 minutes old."""
    connection = health._redis_connection()
    worker = Worker(["default"], connection=connection, name="platform-check-test-worker")
    worker.register_birth()
    connection.hset(worker.key, "last_heartbeat", utcformat(datetime.now(UTC) - timedelta(minutes=10)))
    yield worker
    worker.register_death()
    connection.delete(worker.key)


@pytest.fixture
def unreachable_engines(settings, tmp_path):
    """Every engine at an address where nothing listens: a closed unix socket path and a closed port."""
    settings.DOCKER_HOST = "tcp://127.0.0.1:1"
    settings.NGINX_ENABLED = False
    Host.objects.update(docker_url=f"unix://{tmp_path}/no-docker.sock")
    host, _ = Host.objects.get_or_create(
        name="platform-check-test",
        defaults={"docker_url": "tcp://127.0.0.1:1", "memory_capacity_mb": 1024, "cpu_capacity": 1},
    )
    return host


def test_a_stale_worker_and_a_silent_engine_open_staff_incidents_after_the_threshold_and_close_on_recovery(
    settings, staff_alerts, stale_worker, unreachable_engines, django_capture_on_commit_callbacks
):
    settings.CARE_INCIDENT_THRESHOLD = 2
    engine = f"docker.host-{unreachable_engines.pk}"

    with django_capture_on_commit_callbacks(execute=True):
        health.platform_checks_run()
    assert platform_incident("workers.default") is None and platform_incident(engine) is None  # one is not yet
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        health.platform_checks_run()

    worker_incident = platform_incident("workers.default")
    assert worker_incident.status == Incident.Status.OPEN
    assert re.search(r"platform-check-test-worker \(6\d\d s ago\)", worker_incident.summary)
    engine_incident = platform_incident(engine)
    assert engine_incident.status == Incident.Status.OPEN
    assert engine_incident.summary.startswith("host platform-check-test: ")
    assert "the Docker engine at tcp://127.0.0.1:1 does not answer" in engine_incident.summary
    assert platform_incident("docker.platform").status == Incident.Status.OPEN
    assert mail.outbox and all(m.to == [STAFF] for m in mail.outbox)
    assert {e["component"] for e in staff_alerts.received} >= {"workers.default", engine, "docker.platform"}

    # The worker beats again: its incident closes, the engines' stay open.
    stale_worker.heartbeat()
    with django_capture_on_commit_callbacks(execute=True):
        health.platform_checks_run()

    assert platform_incident("workers.default").status == Incident.Status.CLOSED
    assert platform_incident(engine).status == Incident.Status.OPEN
    assert staff_alerts.received[-1]["event"] in ("incident.opened", "incident.closed")
    assert any(e["event"] == "incident.closed" and e["component"] == "workers.default" for e in staff_alerts.received)


def test_one_open_incident_per_component_and_a_bad_component_name_is_refused(
    settings, staff_alerts, client, staff_user
):
    settings.CARE_INCIDENT_THRESHOLD = 1
    for _ in range(3):
        platform_check_record(component="nginx", ok=False, output="nginx: [emerg] unknown directive\nline 2")
    assert Incident.objects.filter(component="nginx", status=Incident.Status.OPEN).count() == 1
    incident = platform_incident("nginx")
    assert incident.summary == "nginx: [emerg] unknown directive; line 2"
    client.force_login(staff_user)
    assert "platform: nginx" in client.get(reverse("admin:index")).content.decode()
    assert "nginx" in client.get(reverse("admin:provisioning_incident_changelist")).content.decode()
    page = client.get(reverse("admin:provisioning_incident_change", args=[incident.pk]))
    assert page.status_code == 200 and "unknown directive" in page.content.decode()
    with pytest.raises(ValueError, match="a platform component is named in 1 to 60 characters"):
        platform_check_record(component="", ok=True)


def test_a_bad_threshold_stops_the_platform_round_with_a_message_naming_it(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.CARE_INCIDENT_THRESHOLD = 0
    with pytest.raises(ImproperlyConfigured, match="CARE_INCIDENT_THRESHOLD must be a whole number from 1 to 100"):
        platform_check_record(component="workers.default", ok=False, output="stale")
    assert not PlatformCheck.objects.filter(component="workers.default").exists()


# --- nginx ------------------------------------------------------------------------------------------------


@pytest.mark.docker  # the shared test nginx runs under the lock
def test_an_nginx_configuration_that_fails_its_test_opens_a_staff_incident_and_a_fixed_one_closes_it(
    settings, staff_alerts, nginx_server, django_capture_on_commit_callbacks
):
    """The real test nginx: a vhost nginx refuses (`nginx -t`) is what an operator's hand edit or a half-written
    file leaves; the round names nginx's own words, and the next round after the fix closes the incident. The
    running nginx is never reloaded with the bad file, so the other tests' routing is untouched."""
    settings.NGINX_ENABLED = True
    settings.CARE_INCIDENT_THRESHOLD = 2
    broken = Path(settings.NGINX_SITES_DIR) / "zz-platform-check-broken.conf"
    try:
        with django_capture_on_commit_callbacks(execute=True):
            health.platform_checks_run()
        nginx_row = PlatformCheck.objects.filter(component="nginx").latest("checked_at", "id")
        assert nginx_row.ok, nginx_row.output
        assert platform_incident("nginx") is None

        broken.write_text("server { listen 127.0.0.1:18080; this_is_no_directive on; }\n")
        for round_number in (1, 2):
            with django_capture_on_commit_callbacks(execute=True):
                health.platform_checks_run()
            incident = platform_incident("nginx")
            # CARE_INCIDENT_THRESHOLD rounds in a row, not the first failure, open it.
            assert (incident is not None) is (round_number == 2)
        assert incident.status == Incident.Status.OPEN
        assert 'unknown directive "this_is_no_directive"' in incident.summary
        assert any(STAFF in m.to and "nginx" in m.subject for m in mail.outbox)
        assert any(e["event"] == "incident.opened" and e["component"] == "nginx" for e in staff_alerts.received)
    finally:
        broken.unlink(missing_ok=True)

    with django_capture_on_commit_callbacks(execute=True):
        health.platform_checks_run()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.CLOSED
    assert incident.events.filter(new_status=Incident.Status.CLOSED, note="the check passes again").exists()
    assert any(e["event"] == "incident.closed" and e["component"] == "nginx" for e in staff_alerts.received)
