"""What the staff dashboard and the system health page show. Reads only; each part is computed only for
staff whose role may see it."""

import logging
import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.core.cache import cache
from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone

from accounts.models import Customer
from backups.models import BackupRun, RunStatus
from billing.models import Subscription, money_text
from billing.selectors import billing_overview
from consultations.selectors import tickets_first_response_late_counts
from provisioning import acme_client, proxy
from provisioning.care.selectors import incidents_open, sla_breaches
from provisioning.models import JobStep, ProvisioningJob
from provisioning.selectors import host_jobs_depth
from shophosting.core import queues
from shophosting.health import (
    check_repository,
    check_system_backup,
    docker_engines_recorded,
    health_report,
    timed_check,
)
from stores.models import Host, Store
from stores.selectors import host_usage_list

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostCapacity:
    host: Host
    ports_used: int
    ports_total: int
    memory_mb: int
    cpus: float
    disk_gb: int = 0  # the plans' allowances of the stores holding resources there
    stores: int = 0  # the stores (and warm pool stacks) holding resources there

    @property
    def memory_free_mb(self) -> int:
        return self.host.memory_capacity_mb - self.memory_mb

    @property
    def cpus_free(self) -> float:
        return round(float(self.host.cpu_capacity) - self.cpus, 2)

    @property
    def disk_reserved_free_gb(self) -> int | None:
        return None if self.host.disk_capacity_gb is None else self.host.disk_capacity_gb - self.disk_gb

    @property
    def disk_free_gb(self) -> str:
        return f"{self.host.disk_free_bytes / 1e9:.1f}" if self.host.disk_free_bytes is not None else ""

    @property
    def memory_percent(self) -> int:
        return round(100 * self.memory_mb / self.host.memory_capacity_mb) if self.host.memory_capacity_mb else 0

    @property
    def ports_percent(self) -> int:
        return round(100 * self.ports_used / self.ports_total) if self.ports_total else 0


def host_capacity() -> list[HostCapacity]:
    return [
        HostCapacity(
            host=usage.host,
            ports_used=len(usage.ports),
            ports_total=usage.host.port_range_end - usage.host.port_range_start + 1,
            memory_mb=usage.memory_mb,
            cpus=float(usage.cpus),
            disk_gb=usage.disk_gb,
            stores=usage.stores,
        )
        for usage in host_usage_list()
    ]


def customers_by_status() -> dict[str, int]:
    """Customers by the state of their newest subscription: what a merchant's account amounts to today."""
    newest = Subscription.objects.filter(customer=OuterRef("pk")).order_by("-created_at", "-pk").values("status")[:1]
    rows = (
        Customer.objects.filter(is_active=True)
        .annotate(state=Subquery(newest))
        .order_by()
        .values_list("state")
        .annotate(n=Count("pk"))
    )
    labels = dict(Subscription.Status.choices)
    counts = {labels.get(state, "No subscription") if state else "No subscription": n for state, n in rows}
    inactive = Customer.objects.filter(is_active=False).count()
    if inactive:
        counts["Account deactivated"] = inactive
    return counts


def stores_by_status() -> dict[str, int]:
    labels = dict(Store.Status.choices)
    rows = Store.objects.order_by().values_list("status").annotate(n=Count("pk"))
    return {labels[status]: n for status, n in sorted(rows, key=lambda row: list(labels).index(row[0]))}


def failed_jobs_recent(limit: int = 10) -> list[ProvisioningJob]:
    """The newest failed jobs with the title of the step that failed, in one query."""
    failed_step = JobStep.objects.filter(job=OuterRef("pk"), status=JobStep.Status.FAILED).values("title")[:1]
    return list(
        ProvisioningJob.objects.filter(status=ProvisioningJob.Status.FAILED)
        .select_related("store")
        .annotate(failed_step=Subquery(failed_step))
        .order_by("-finished_at", "-pk")[:limit]
    )


def jobs_active(limit: int = 10) -> list[ProvisioningJob]:
    """Jobs queued or running, the oldest first: the one stuck longest is the one to look at."""
    return list(
        ProvisioningJob.objects.filter(status__in=ProvisioningJob.ACTIVE)
        .select_related("store")
        .order_by("created_at", "pk")[:limit]
    )


def sla_breaches_recent() -> list[dict]:
    """SLA breaches of this month (so far) and last month, for credits: [{month, store, uptime}]."""
    today = timezone.now().date()
    last = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    rows = []
    for month in (today.replace(day=1), last):
        for store, uptime in sla_breaches(year=month.year, month=month.month):
            rows.append({"month": month, "store": store, "uptime": uptime})
    return rows


FIGURES_CACHE_KEY = "staff:dashboard:figures:v1"
LIVE_CACHE_KEY = "staff:dashboard:live:v1"
# Moved (to a new random token) after every change staff make (dashboard_live_changed): a kept live part
# computed under another token is not used.
LIVE_GENERATION_KEY = "staff:dashboard:live:generation"
LIVE_GENERATION_SECONDS = 24 * 3600  # far longer than an entry lives; if it goes, kept entries stop matching
JOBS_ACTIVE_SHOWN = 10
MY_ACTIONS_SHOWN = 10  # as Django's index shows
# The parts of the live figures, each computed only for staff whose role may see it (or for all, when kept).
LIVE_PARTS = {
    "jobs": "provisioning.view_provisioningjob",
    "incidents": "provisioning.view_incident",
    "tickets": "consultations.view_ticket",
}


def _cache_read(keys: list[str]) -> dict:
    try:
        return cache.get_many(keys)
    except Exception:  # noqa: BLE001 - Redis down: computed on the spot, as with the caches off
        return {}


def _cache_write(key: str, value, seconds: int) -> None:
    try:
        cache.set(key, value, timeout=seconds)
    except Exception:  # noqa: BLE001 - the next view computes it again
        logger.warning("%s could not be cached", key, exc_info=True)


def dashboard_figures(*, found: dict | None = None) -> dict:
    """The index's figures that change slowly and cost the most: customers and stores by status, host
    capacity, the MRR over every subscription, past-due accounts and SLA breaches. Computed for every role at
    once, at most every STAFF_FIGURES_SECONDS (60: the index says "as of" with the time), and shared by all
    staff through the cache; 0 computes them on every view. What staff act on (jobs, incidents, tickets,
    queues) is `dashboard_live`. `found`: the cache entries already read by the caller."""
    seconds = settings.STAFF_FIGURES_SECONDS
    figures = None
    if seconds > 0:
        figures = (found if found is not None else _cache_read([FIGURES_CACHE_KEY])).get(FIGURES_CACHE_KEY)
    if figures is None:
        overview = billing_overview()
        figures = {
            "computed_at": timezone.now(),
            "customers": customers_by_status(),
            "stores": stores_by_status(),
            "capacity": host_capacity(),
            "mrr_cents": overview.mrr_cents,
            "past_due": len(overview.past_due),
            "sla_breaches": sla_breaches_recent(),
        }
        if seconds > 0:
            _cache_write(FIGURES_CACHE_KEY, figures, seconds)
    return figures


def _live_compute(parts) -> dict:
    live: dict = {"computed_at": timezone.now()}
    if "jobs" in parts:
        live["failed_jobs"] = failed_jobs_recent()
        live["jobs_active"] = jobs_active(limit=JOBS_ACTIVE_SHOWN)
        # Fewer than a full list shown: that is all of them, without counting again.
        live["jobs_running"] = (
            len(live["jobs_active"])
            if len(live["jobs_active"]) < JOBS_ACTIVE_SHOWN
            else ProvisioningJob.objects.filter(status__in=ProvisioningJob.ACTIVE).count()
        )
        live["host_jobs"] = host_jobs_depth()  # one grouped query over the active jobs
        try:
            live["queues"] = queues.queue_stats()
        except Exception as exc:  # noqa: BLE001 - Redis down must not take the dashboard with it
            live["queues_error"] = f"{type(exc).__name__}: {exc}"
    if "incidents" in parts:
        live["incidents_open"] = incidents_open()
    if "tickets" in parts:
        live["tickets_first_response_late"] = tickets_first_response_late_counts()
    return live


def dashboard_live(user, *, found: dict | None = None) -> dict:
    """What staff act on: failed and active jobs, queue depths, open incidents, tickets late for their first
    answer. Their seven reads were half of the index's time (issue #21), so with STAFF_LIVE_SECONDS > 0 they
    are computed for every role at once and shared by all staff for at most that long (the index says "as of"
    with the time); any change staff make through the staff site or the RQ dashboard moves the generation
    (dashboard_live_changed), and an entry computed under an older one is not used: the next view after one's
    own action reads afresh. Changes made elsewhere (a worker finishing a job, the checks opening an incident,
    a customer's restart or ticket) show within STAFF_LIVE_SECONDS. 0: read on every view, only the parts the
    user's role may see."""
    seconds = settings.STAFF_LIVE_SECONDS
    if seconds <= 0:
        return _live_compute({part for part, perm in LIVE_PARTS.items() if user.has_perm(perm)})
    if found is None:
        found = _cache_read([LIVE_CACHE_KEY, LIVE_GENERATION_KEY])
    generation = found.get(LIVE_GENERATION_KEY)
    kept = found.get(LIVE_CACHE_KEY)
    # The age is checked here too, not only left to Redis's expiry: an entry is never shown older than promised.
    if (
        kept is not None
        and kept.get("generation") == generation
        and timezone.now() - kept["computed_at"] < timedelta(seconds=seconds)
    ):
        return kept
    # The generation is the one read before computing: a change committed while this runs moves it, and this
    # entry is then refused by the next view instead of hiding the change for STAFF_LIVE_SECONDS.
    live = {**_live_compute(LIVE_PARTS), "generation": generation}
    _cache_write(LIVE_CACHE_KEY, live, seconds)
    return live


def dashboard_live_changed() -> None:
    """Staff changed something (an admin save, action or deletion, a retry, a restart, a queue cleared): the
    live part kept for the index is not used again. Called after the change's view returned, so after its
    transaction committed; a new token rather than a counter, so nothing needs to exist first."""
    try:
        cache.set(LIVE_GENERATION_KEY, uuid.uuid4().hex, timeout=LIVE_GENERATION_SECONDS)
    except Exception:  # noqa: BLE001 - Redis down: nothing is kept either
        logger.warning("the staff live figures could not be marked stale", exc_info=True)


def _my_actions_key(user) -> str:
    return f"staff:dashboard:my-actions:v1:{user.pk}"


def my_actions(user, *, found: dict | None = None) -> list[LogEntry]:
    """The user's last admin changes (Django's "Recent actions, My actions"), kept like the live part (its query
    was a fifth of the index's time). Exact whenever kept: admin log entries are written only by the staff
    site's saves, deletions and actions, all POSTs that move the live generation after they return, and an
    entry read under another generation is not used."""
    seconds = settings.STAFF_LIVE_SECONDS
    key = _my_actions_key(user)
    if seconds > 0:
        if found is None:
            found = _cache_read([key, LIVE_GENERATION_KEY])
        kept = found.get(key)
        if kept is not None and kept["generation"] == found.get(LIVE_GENERATION_KEY):
            return kept["entries"]
    entries = list(LogEntry.objects.filter(user_id=user.pk).select_related("content_type")[:MY_ACTIONS_SHOWN])
    if seconds > 0:
        _cache_write(key, {"entries": entries, "generation": found.get(LIVE_GENERATION_KEY)}, seconds)
    return entries


def dashboard(user) -> dict:
    """The admin index: counts, capacity, jobs, tickets late for their first answer, money, quick actions and
    the user's own recent changes, as far as the user's role reaches."""

    keys = [FIGURES_CACHE_KEY] if settings.STAFF_FIGURES_SECONDS > 0 else []
    if settings.STAFF_LIVE_SECONDS > 0:
        keys += [LIVE_CACHE_KEY, LIVE_GENERATION_KEY, _my_actions_key(user)]
    found = _cache_read(keys) if keys else {}  # every cache the index reads, in one round trip
    figures = dashboard_figures(found=found)
    live = dashboard_live(user, found=found)
    data: dict = {
        "figures_at": figures["computed_at"],
        "figures_seconds": settings.STAFF_FIGURES_SECONDS,
        "live_at": live["computed_at"],
        "live_seconds": settings.STAFF_LIVE_SECONDS,
        "my_actions": my_actions(user, found=found),
    }
    if user.has_perm("accounts.view_customer"):
        data["customers"] = figures["customers"]
    if user.has_perm("stores.view_store"):
        data["stores"] = figures["stores"]
    if user.has_perm("stores.view_host"):
        data["capacity"] = figures["capacity"]
    if user.has_perm(LIVE_PARTS["jobs"]):
        for key in ("failed_jobs", "jobs_active", "jobs_running", "host_jobs", "queues", "queues_error"):
            if key in live:
                data[key] = live[key]
    if user.has_perm(LIVE_PARTS["incidents"]):
        data["incidents_open"] = live["incidents_open"]
        data["sla_breaches"] = figures["sla_breaches"]
    if user.has_perm(LIVE_PARTS["tickets"]):
        data["tickets_first_response_overdue"], data["tickets_first_response_due_soon"] = live[
            "tickets_first_response_late"
        ]
    if user.has_perm("billing.view_subscription"):
        data["mrr"] = money_text(figures["mrr_cents"])
        data["past_due"] = figures["past_due"]
    data["can"] = {
        "operate": user.has_perm("stores.operate_store"),
        "system_backup": user.has_perm("backups.run_system_backup"),
        "rq": user.has_perm("provisioning.use_rq_dashboard"),
        "health": user.has_perm("stores.view_host"),
        "logs": user.has_perm("accounts.view_auditevent"),
        "add_store": user.has_perm("stores.add_store"),
    }
    return data


# --- System health ---------------------------------------------------------------------------------------


def disk_usage() -> list[dict]:
    """Free space where the platform writes: settings.STAFF_DISK_PATHS, by label."""
    rows = []
    for label, raw in settings.STAFF_DISK_PATHS.items():
        path = Path(raw)
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        usage = shutil.disk_usage(existing) if existing else None
        rows.append(
            {
                "label": label,
                "path": str(path),
                "exists": path.exists(),
                "total_bytes": usage.total if usage else 0,
                "free_bytes": usage.free if usage else 0,
                "used_percent": round(100 * (usage.total - usage.free) / usage.total) if usage else None,
                "low": bool(usage and usage.free / usage.total < settings.STAFF_DISK_FREE_WARN_RATIO),
            }
        )
    return rows


def store_certificates(*, warn_days: int = 21) -> list[dict]:
    """Every live store's TLS state and, when issued, its expiry; the soonest first."""

    now = timezone.now()
    rows = []
    live = Store.objects.filter(status__in=(Store.Status.ACTIVE, Store.Status.SUSPENDED, Store.Status.PROVISIONING))
    for store in live.only("pk", "domain", "tls_status", "tls_error", "tls_next_attempt_at").order_by("domain"):
        expires_at = acme_client.certificate_expires_at(domain=store.proxy_key)
        days_left = (expires_at - now).days if expires_at else None
        rows.append(
            {
                "store": store,
                "expires_at": expires_at,
                "days_left": days_left,
                "warn": days_left is None or days_left < warn_days,
            }
        )
    return sorted(rows, key=lambda row: (row["days_left"] is not None, row["days_left"] or 0))


def backup_status() -> dict:
    """The last system backup and the stores whose last backup failed or is overdue."""

    cutoff = timezone.now() - timedelta(hours=2 * settings.BACKUP_INTERVAL_HOURS)
    runs = BackupRun.objects.filter(store=OuterRef("pk")).order_by("-created_at")
    stores = Store.objects.filter(status=Store.Status.ACTIVE).annotate(
        last_status=Subquery(runs.exclude(status__in=["queued", "running"]).values("status")[:1]),
        last_good=Subquery(runs.filter(status=RunStatus.SUCCEEDED).values("finished_at")[:1]),
    )
    attention = [s for s in stores if s.last_status == RunStatus.FAILED or not s.last_good or s.last_good < cutoff]
    return {
        "system": timed_check(check_system_backup),
        "repository": timed_check(check_repository),
        "stores_needing_attention": attention,
    }


def system_health() -> dict:
    """Every check with its details. Docker is what a worker last recorded (shophosting/health.py): the web
    tier has no access to the engines."""

    healthy, checks, _info = health_report()
    try:
        engines = docker_engines_recorded()
    except Exception:  # noqa: BLE001 - reported by the redis check above
        engines = None
    hosts = []
    for capacity in host_capacity():
        engine = (engines or {}).get("hosts", {}).get(str(capacity.host.pk))
        if engine is None:
            engine = {"ok": False, "error": "no worker has checked this host's engine yet", "ms": 0}
        hosts.append({"capacity": capacity, "engine": engine})
    nginx = timed_check(proxy.nginx_status) if settings.NGINX_ENABLED else {"ok": True, "disabled": True, "ms": 0}
    try:
        workers = queues.workers()
    except Exception:  # noqa: BLE001 - reported by the redis check above
        workers = []
    return {
        "healthy": healthy and nginx["ok"] and all(h["engine"]["ok"] for h in hosts if h["capacity"].host.active),
        "checks": checks,
        "engines": engines,
        "nginx": nginx,
        "hosts": hosts,
        "workers": workers,
        "disks": disk_usage(),
        "backups": backup_status(),
        "certificates": store_certificates(),
    }
