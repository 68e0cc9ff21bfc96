"""What the staff dashboard and the system health page show. Reads only; each part is computed only for
staff whose role may see it."""

import logging
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
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
JOBS_ACTIVE_SHOWN = 10


def dashboard_figures() -> dict:
    """The index's figures that change slowly and cost the most: customers and stores by status, host
    capacity, the MRR over every subscription, past-due accounts and SLA breaches. Computed for every role at
    once, at most every STAFF_FIGURES_SECONDS (60: the index says "as of" with the time), and shared by all
    staff through the cache; 0 computes them on every view. What staff act on (jobs, incidents, tickets,
    queues) is read live by `dashboard`."""
    seconds = settings.STAFF_FIGURES_SECONDS
    figures = None
    if seconds > 0:
        try:
            figures = cache.get(FIGURES_CACHE_KEY)
        except Exception:  # noqa: BLE001 - Redis down: computed on the spot, as with the cache off
            figures = None
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
            try:
                cache.set(FIGURES_CACHE_KEY, figures, timeout=seconds)
            except Exception:  # noqa: BLE001 - the next view computes them again
                logger.warning("the staff figures could not be cached", exc_info=True)
    return figures


def dashboard(user) -> dict:
    """The admin index: counts, capacity, jobs, tickets late for their first answer, money and quick actions,
    as far as the user's role reaches."""

    figures = dashboard_figures()
    data: dict = {"figures_at": figures["computed_at"], "figures_seconds": settings.STAFF_FIGURES_SECONDS}
    if user.has_perm("accounts.view_customer"):
        data["customers"] = figures["customers"]
    if user.has_perm("stores.view_store"):
        data["stores"] = figures["stores"]
    if user.has_perm("stores.view_host"):
        data["capacity"] = figures["capacity"]
    if user.has_perm("provisioning.view_provisioningjob"):
        data["failed_jobs"] = failed_jobs_recent()
        data["jobs_active"] = jobs_active(limit=JOBS_ACTIVE_SHOWN)
        # Fewer than a full list shown: that is all of them, without counting again.
        data["jobs_running"] = (
            len(data["jobs_active"])
            if len(data["jobs_active"]) < JOBS_ACTIVE_SHOWN
            else ProvisioningJob.objects.filter(status__in=ProvisioningJob.ACTIVE).count()
        )
        data["host_jobs"] = host_jobs_depth()  # live: one grouped query over the active jobs
        try:
            data["queues"] = queues.queue_stats()
        except Exception as exc:  # noqa: BLE001 - Redis down must not take the dashboard with it
            data["queues_error"] = f"{type(exc).__name__}: {exc}"
    if user.has_perm("provisioning.view_incident"):
        data["incidents_open"] = incidents_open()
        data["sla_breaches"] = figures["sla_breaches"]
    if user.has_perm("consultations.view_ticket"):
        overdue, due_soon = tickets_first_response_late_counts()
        data["tickets_first_response_overdue"] = overdue
        data["tickets_first_response_due_soon"] = due_soon
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
