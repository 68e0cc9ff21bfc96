"""Health checks: /healthz and /readyz say only ok or not; staff (the System health page, `check_health`) get
the details; and no web request talks to Docker (the web unit has no docker group, deploy/)."""

import io
import json
import socket
import threading
import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from shophosting import health, jobs

pytestmark = pytest.mark.django_db

# What may never reach the public: endpoints, versions, error text, component names.
LEAKS = ("127.0.0.1", "tcp://", "unix://", "/proc", "docker", "restic", "version", "error", "redis", "worker")


@pytest.fixture(autouse=True)
def _no_engine_record():
    """Each test starts before any worker recorded the Docker engines."""
    health._redis_connection().delete(health.ENGINES_KEY)
    yield
    health._redis_connection().delete(health.ENGINES_KEY)


def record_engines() -> None:
    """What the default worker's `docker_engines_check` job does every minute (shophosting/cron.py)."""
    jobs.docker_engines_check()


def assert_says_nothing_more(response, status: str) -> None:
    assert response.json() == {"status": status}
    body = response.content.decode().lower()
    assert [leak for leak in LEAKS if leak in body] == []


def test_readyz_is_cheap_and_always_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert_says_nothing_more(response, "ok")


def test_healthz_is_200_and_only_ok_when_database_redis_docker_and_a_worker_answer(
    client, docker_engine, rq_worker_process
):
    record_engines()

    response = client.get("/healthz")

    assert response.status_code == 200, health.health_report()
    assert_says_nothing_more(response, "ok")
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_broken_docker_and_restic_show_on_staff_pages_and_check_health_never_on_healthz(
    client, settings, staff_user, tmp_path, rq_worker_process
):
    from backups.services.system import system_backup_enqueue, system_backup_execute
    from stores.models import Host

    # Honestly broken: an engine address where nothing listens, a repository that cannot exist (/proc).
    settings.DOCKER_HOST = "tcp://127.0.0.1:1"
    settings.RESTIC_REPOSITORY = "/proc/shophosting-no-repository/restic"
    settings.RESTIC_PASSWORD_FILE = str(tmp_path / "password")
    settings.RESTIC_CACHE_DIR = str(tmp_path / "cache")
    (tmp_path / "password").write_text("not the real one")
    Host.objects.filter(name="local").update(docker_url="tcp://127.0.0.1:1")
    run = system_backup_execute(run_id=system_backup_enqueue().pk)
    assert run.status == "failed" and "/proc/shophosting-no-repository" in run.error
    record_engines()

    public = client.get("/healthz")

    assert public.status_code == 503
    assert_says_nothing_more(public, "unavailable")

    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("check_health", stdout=out)
    assert exit_.value.code == 1
    lines = {line.split()[0]: line for line in out.getvalue().splitlines()}
    assert "tcp://127.0.0.1:1 does not answer" in lines["docker"] and "provisioning is unavailable" in lines["docker"]
    assert "/proc/shophosting-no-repository" in lines["system_backup"]
    assert "FAILED" not in lines["database"] + lines["redis"] + lines["worker"]  # Docker is why it is down

    client.force_login(staff_user)
    page = client.get(reverse("admin:system_health")).content.decode()
    assert "tcp://127.0.0.1:1 does not answer" in page  # the platform's engine and the local host's
    assert "/proc/shophosting-no-repository" in page
    assert "Something needs attention" in page


def test_healthz_is_503_when_redis_is_unreachable_and_check_health_says_why(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = client.get("/healthz")

    assert response.status_code == 503
    assert_says_nothing_more(response, "unavailable")
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("check_health", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["checks"]["redis"]["ok"] is False and "Connection" in report["checks"]["redis"]["error"]
    assert report["checks"]["database"]["ok"] is True


def test_docker_is_down_for_healthz_until_a_worker_reports_and_when_its_report_goes_stale(
    client, docker_engine, rq_worker_process
):
    healthy, checks, _ = health.health_report()
    assert not healthy and "no worker has reported on the Docker engine yet" in checks["docker"]["error"]
    assert client.get("/healthz").status_code == 503

    record_engines()
    healthy, checks, _ = health.health_report()
    assert healthy, checks
    assert checks["docker"]["server_version"] == docker_engine.server_version
    assert client.get("/healthz").status_code == 200

    report = json.loads(health._redis_connection().get(health.ENGINES_KEY))
    report["checked_at"] -= health.ENGINES_RECORD_MAX_AGE + 60
    health._redis_connection().set(health.ENGINES_KEY, json.dumps(report))
    healthy, checks, _ = health.health_report()
    assert not healthy and "the last Docker report is" in checks["docker"]["error"]
    assert client.get("/healthz").status_code == 503


def test_check_health_asks_docker_itself_and_records_it_for_the_web_tier(settings):
    settings.DOCKER_HOST = "unix:///nonexistent/docker.sock"
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("check_health", "--json", stdout=out)
    docker = json.loads(out.getvalue())["checks"]["docker"]
    assert docker["ok"] is False and "/nonexistent/docker.sock" in docker["error"]
    recorded = health.docker_engines_recorded()
    assert recorded["docker"]["error"] == docker["error"] and recorded["age_seconds"] < 60


def test_the_system_backup_is_reported_to_staff_without_failing_health(client):
    from django.utils import timezone

    from backups.models import BackupRun

    info = health.health_report()[2]["system_backup"]
    assert info["ok"] is False and "no system backup has run yet" in info["error"]

    BackupRun.objects.create(kind="system", status="succeeded", snapshot_id="c" * 64, finished_at=timezone.now())
    info = health.health_report()[2]["system_backup"]
    assert info["ok"] is True and info["age_hours"] == 0 and info["snapshot"] == "cccccccc"


class DockerListener:
    """A unix socket posing as the Docker engine: it counts the connections it gets and answers none."""

    def __init__(self, path):
        self.path, self.connections = str(path), 0
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(8)
        self.server.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.close()


def test_no_web_request_talks_to_docker(client, settings, staff_user, tmp_path, rq_worker_process):
    from stores.models import Host

    with DockerListener(tmp_path / "docker.sock") as engine:
        settings.DOCKER_HOST = f"unix://{engine.path}"
        Host.objects.update(docker_url=f"unix://{engine.path}")
        client.force_login(staff_user)

        assert client.get("/healthz").status_code == 503
        assert client.get("/readyz").status_code == 200
        assert client.get(reverse("admin:system_health")).status_code == 200
        assert client.get(reverse("admin:index")).status_code == 200
        time.sleep(0.3)
        assert engine.connections == 0

        record_engines()  # the worker's job does connect: the listener is what it finds
        time.sleep(0.3)
        assert engine.connections > 0
