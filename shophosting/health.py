"""Health checks, for three audiences.

- `/healthz` (public: load balancers, uptime monitors) answers only whether the platform is healthy: the
  status code (200 or 503) and `{"status": "ok" | "unavailable"}`. No versions, endpoints or errors: those
  help an attacker and belong to staff.
- `/readyz` (public) answers that this web process serves requests; it asks no dependency.
- Staff get every check with its details: the admin's System health page and `manage.py check_health`.

The web tier never talks to Docker (its unit has no `docker` group). A worker checks the Docker engines
(`docker_engines_record`, in the platform round `platform_checks_run`, every minute through rqcron) and
`check_health` checks them too; both write what they found to Redis (`ENGINES_KEY`), and `/healthz` and the
staff page read that record. A record older
than `ENGINES_RECORD_MAX_AGE` counts as Docker down: nobody with access to the engine has looked lately.
"""

import json
import os
import socket
import time

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from backups.models import BackupRun, RunStatus
from backups.services.repository import REPOSITORY_COMPONENT
from provisioning import docker_client, proxy
from provisioning.care.models import PlatformCheck
from provisioning.care.platform import platform_check_record
from provisioning.care.selectors import platform_check_last
from provisioning.host_images import hosts_images_refresh
from provisioning.hosts import host_heartbeat
from shophosting.core import queues
from stores.models import Host

ENGINES_KEY = "shophosting:health:docker-engines"
# The worker records every minute; a few missed runs (a busy default queue) are not yet an outage.
ENGINES_RECORD_MAX_AGE = 300


class Reported(RuntimeError):
    """A failure another process already described: its message is shown as it is."""


def timed_check(check) -> dict:
    """Run one check: {ok, ms} and its details, or {ok: False, error, ms}; it never raises."""
    started = time.monotonic()
    try:
        result = {"ok": True, **(check() or {})}
    except Reported as exc:
        result = {"ok": False, "error": str(exc)}
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


def check_worker():
    """At least one RQ worker whose heartbeat is fresh."""
    fresh = [worker for worker in queues.workers(connection=_redis_connection()) if worker.alive]
    if not fresh:
        raise RuntimeError(f"no RQ worker heartbeat in the last {settings.WORKER_HEARTBEAT_MAX_AGE} s")
    return {"workers": len(fresh), "queues": sorted({q for w in fresh for q in w.queues})}


def check_system_backup():
    """The last system backup: reported for staff and monitoring, never a reason to take the site out."""
    last = BackupRun.objects.filter(kind=BackupRun.Kind.SYSTEM).exclude(status__in=["queued", "running"]).first()
    if last is None:
        raise RuntimeError("no system backup has run yet (manage.py backup_system)")
    if last.status != RunStatus.SUCCEEDED:
        raise RuntimeError(f"the last system backup failed: {last.error[:300]}")
    age_hours = round((time.time() - last.finished_at.timestamp()) / 3600, 1)
    if age_hours > 26:
        raise RuntimeError(f"the last system backup is {age_hours} h old")
    return {"finished_at": last.finished_at.isoformat(), "age_hours": age_hours, "snapshot": last.snapshot_id[:8]}


# --- Docker: checked where the docker group is, read everywhere else --------------------------------------


def _engine(base_url: docker_client.EngineRef = None):
    try:
        info = docker_client.engine_info(base_url=base_url)
    except docker_client.DockerUnavailable as exc:
        raise RuntimeError(f"{exc}; provisioning is unavailable") from exc
    return info.__dict__


def docker_engines_check() -> dict:
    """Ask the platform's Docker engine (DOCKER_HOST) and every host's. Only for processes that may talk to
    Docker (the workers, `check_health`); the web tier reads the record instead."""
    return {
        "checked_at": time.time(),
        "checked_by": f"{socket.gethostname()}:{os.getpid()}",
        "docker": timed_check(_engine),
        "hosts": {str(host.pk): timed_check(lambda host=host: _engine(host.engine)) for host in Host.objects.all()},
    }


def docker_engines_record() -> dict:
    """Check the engines and record the result for the web tier (the periodic job and `check_health`)."""
    report = docker_engines_check()
    _engines_save(report)
    return report


def _engines_save(report: dict) -> None:
    # Kept a day at most: an old record is reported as stale, a missing one as never written.
    _redis_connection().set(ENGINES_KEY, json.dumps(report), ex=24 * 3600)


def docker_engines_recorded() -> dict | None:
    """The last recorded engine report with its age in seconds, or None when none was written."""
    raw = _redis_connection().get(ENGINES_KEY)
    if raw is None:
        return None
    report = json.loads(raw)
    report["age_seconds"] = round(max(time.time() - report["checked_at"], 0), 1)
    return report


def check_docker_recorded():
    """Docker as the workers last saw it."""
    report = docker_engines_recorded()
    if report is None:
        raise RuntimeError("no worker has reported on the Docker engine yet (the platform_checks_run job)")
    if report["age_seconds"] > ENGINES_RECORD_MAX_AGE:
        raise RuntimeError(f"the last Docker report is {report['age_seconds']:.0f} s old: is the default worker up?")
    docker = report["docker"]
    if not docker["ok"]:
        raise Reported(docker["error"])
    details = {key: value for key, value in docker.items() if key not in ("ok", "ms")}
    return {**details, "checked_by": report["checked_by"], "age_seconds": report["age_seconds"]}


# --- Platform checks: recorded, with staff incidents (provisioning.care.platform) ---------------------------


def platform_checks_run() -> list[PlatformCheck]:
    """One platform round (a worker, every minute): ask the Docker engines (recorded for the web tier as
    before) and look at each queue's worker heartbeats, and record each component's state: a component that
    fails CARE_INCIDENT_THRESHOLD rounds in a row opens a staff incident, a passing round closes it."""
    engines = docker_engines_record()
    names = dict(Host.objects.values_list("pk", "name"))
    found = [("docker.platform", engines["docker"])]
    found += [(f"docker.host-{pk}", result) for pk, result in engines["hosts"].items()]
    if settings.NGINX_ENABLED:
        found.append(("nginx", timed_check(proxy.nginx_status)))
    recorded = []
    for component, result in found:
        host_name = names.get(int(component.removeprefix("docker.host-"))) if "host-" in component else None
        where = f"host {host_name}: " if host_name else ""
        recorded.append(
            platform_check_record(
                component=component,
                ok=result["ok"],
                output="" if result["ok"] else where + result.get("error", ""),
                duration_ms=round(result["ms"]),
            )
        )
    recorded += [platform_check_record(component=c, ok=ok, output=output) for c, ok, output in workers_by_queue()]
    # After the records: a host's stores go unreachable once its incident is open, and come back when it answers.
    for pk, result in engines["hosts"].items():
        host_heartbeat(host_id=int(pk), ok=result["ok"])
    # What each answering host holds: one image list per host (provisioning/host_images.py).
    hosts_images_refresh(host_ids=[int(pk) for pk, result in engines["hosts"].items() if result["ok"]])
    return recorded


def workers_by_queue() -> list[tuple[str, bool, str]]:
    """(component `workers.<queue>`, a worker with a fresh heartbeat serves it, what was seen) per RQ queue."""
    states = queues.workers(connection=_redis_connection())
    found = []
    for queue in settings.RQ_QUEUES:
        serving = [w for w in states if queue in w.queues]
        fresh = [w for w in serving if w.alive]
        if fresh:
            found.append((f"workers.{queue}", True, ""))
            continue
        seen = ", ".join(
            f"{w.name} ("
            + ("no heartbeat" if w.heartbeat_age_seconds is None else f"{w.heartbeat_age_seconds:.0f} s ago")
            + ")"
            for w in serving
        )
        found.append(
            (
                f"workers.{queue}",
                False,
                f"no worker of the {queue} queue has a heartbeat in the last {settings.WORKER_HEARTBEAT_MAX_AGE} s"
                + (f"; stale: {seen}" if seen else "; none is registered"),
            )
        )
    return found


def check_repository():
    """The backup repository's last `restic check` (weekly, backups.services.repository)."""
    last = platform_check_last(REPOSITORY_COMPONENT)
    if last is None:
        raise RuntimeError("the backup repository has not been checked yet (manage.py rqcron runs it weekly)")
    if not last.ok:
        raise Reported(f"restic check failed on {last.checked_at:%Y-%m-%d %H:%M} UTC: {last.output[:300]}")
    return {"checked_at": last.checked_at.isoformat(), "duration_s": round(last.duration_ms / 1000, 1)}


# --- Reports --------------------------------------------------------------------------------------------

CHECKS = {"database": check_database, "redis": check_redis, "docker": check_docker_recorded, "worker": check_worker}
# Reported to staff but not part of the status: a stale backup is staff's problem, not the load balancer's.
INFORMATIONAL = {"system_backup": check_system_backup, "backup_repository": check_repository}


def health_report(*, check_docker: bool = False) -> tuple[bool, dict, dict]:
    """(healthy, checks, informational checks), with every detail: for staff and `check_health` only.

    check_docker=True asks the engines here and records the answer (for processes with the docker group);
    otherwise Docker is what the workers last recorded."""
    live = None
    if check_docker:
        engines = docker_engines_check()
        try:
            _engines_save(engines)
        except redis.RedisError:
            pass  # the redis check below reports it
        live = engines["docker"]
    results = {
        name: live if name == "docker" and live is not None else timed_check(check) for name, check in CHECKS.items()
    }
    info = {name: timed_check(check) for name, check in INFORMATIONAL.items()}
    return all(result["ok"] for result in results.values()), results, info


@never_cache
def healthz(request):
    healthy, _checks, _info = health_report()
    return JsonResponse({"status": "ok" if healthy else "unavailable"}, status=200 if healthy else 503)


@never_cache
def readyz(request):
    return JsonResponse({"status": "ok"})
