import pytest

pytestmark = pytest.mark.django_db


def test_readyz_is_cheap_and_always_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_is_200_when_database_redis_docker_and_a_worker_answer(client, docker_engine, rq_worker_process):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "docker": True,
        "worker": True,
    }
    assert body["checks"]["database"]["vendor"] == "mysql"
    assert "provisioning" in body["checks"]["worker"]["queues"]
    assert body["checks"]["docker"]["server_version"] == docker_engine.server_version


def test_healthz_is_503_when_redis_is_unreachable(client, settings, docker_engine):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["ok"] is False
    assert "Connection" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_healthz_names_the_reason_when_docker_is_unavailable(client, settings):
    settings.DOCKER_HOST = "unix:///nonexistent/docker.sock"
    body = client.get("/healthz").json()
    assert body["checks"]["docker"]["ok"] is False
    assert "provisioning is unavailable" in body["checks"]["docker"]["error"]
    assert "/nonexistent/docker.sock" in body["checks"]["docker"]["error"]


def test_healthz_reports_the_system_backup_without_failing_on_it(client):
    from django.utils import timezone

    from backups.models import BackupRun

    info = client.get("/healthz").json()["info"]["system_backup"]
    assert info["ok"] is False and "no system backup has run yet" in info["error"]

    BackupRun.objects.create(kind="system", status="succeeded", snapshot_id="c" * 64, finished_at=timezone.now())
    info = client.get("/healthz").json()["info"]["system_backup"]
    assert info["ok"] is True and info["age_hours"] == 0 and info["snapshot"] == "cccccccc"
