"""/readyz: the process answers. /healthz: every dependency answers, as JSON, 200 or 503."""

import time

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from provisioning import docker_client
from shophosting import queues


def timed_check(check) -> dict:
    """Run one check: {ok, ms} and its details, or {ok: False, error, ms}; it never raises."""
    started = time.monotonic()
    try:
        result = {"ok": True, **(check() or {})}
    except Exception as exc:  # noqa: BLE001 - a health check reports every failure, it never raises
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def _redis_connection() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_redis():
    _redis_connection().ping()


def check_docker():
    try:
        info = docker_client.engine_info()
    except docker_client.DockerUnavailable as exc:
        raise RuntimeError(f"{exc}; provisioning is unavailable") from exc
    return {"server_version": info.server_version, "api_version": info.api_version}


def check_worker():
    """At least one RQ worker whose heartbeat is fresh."""
    fresh = [worker for worker in queues.workers(connection=_redis_connection()) if worker.alive]
    if not fresh:
        raise RuntimeError(f"no RQ worker heartbeat in the last {settings.WORKER_HEARTBEAT_MAX_AGE} s")
    return {"workers": len(fresh), "queues": sorted({q for w in fresh for q in w.queues})}


def check_system_backup():
    """The last system backup: reported for staff and monitoring, never a reason to take the site out."""
    from backups.models import BackupRun, RunStatus

    last = BackupRun.objects.filter(kind=BackupRun.Kind.SYSTEM).exclude(status__in=["queued", "running"]).first()
    if last is None:
        raise RuntimeError("no system backup has run yet (manage.py backup_system)")
    if last.status != RunStatus.SUCCEEDED:
        raise RuntimeError(f"the last system backup failed: {last.error[:300]}")
    age_hours = round((time.time() - last.finished_at.timestamp()) / 3600, 1)
    if age_hours > 26:
        raise RuntimeError(f"the last system backup is {age_hours} h old")
    return {"finished_at": last.finished_at.isoformat(), "age_hours": age_hours, "snapshot": last.snapshot_id[:8]}


CHECKS = {"database": check_database, "redis": check_redis, "docker": check_docker, "worker": check_worker}
# Shown in /healthz but not part of its status code: a stale backup is staff's problem, not the load balancer's.
INFORMATIONAL = {"system_backup": check_system_backup}


def health_report() -> tuple[bool, dict, dict]:
    """(healthy, checks, informational checks): what /healthz and `manage.py check_health` report."""
    results = {name: timed_check(check) for name, check in CHECKS.items()}
    info = {name: timed_check(check) for name, check in INFORMATIONAL.items()}
    return all(result["ok"] for result in results.values()), results, info


@never_cache
def healthz(request):
    healthy, results, info = health_report()
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", "checks": results, "info": info}, status=200 if healthy else 503
    )


@never_cache
def readyz(request):
    return JsonResponse({"status": "ok"})
