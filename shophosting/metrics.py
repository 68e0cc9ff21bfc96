"""Prometheus metrics for operators: `GET /metrics` (README, "Monitoring"; deploy/README.md has a scrape config).

Why prometheus-client with one custom collector, not django-prometheus: the platform's work happens in several
processes (gunicorn workers, RQ workers, cron), and per-process counters would disagree between them and vanish
with each restart, unless every process shares a multiprocess directory. Everything an operator wants to watch
is already recorded durably: jobs, stores, backups and webhook deliveries in the database, queues in Redis,
certificates on disk. So the collector reads those at scrape time, and every web worker answers the same
numbers. django-prometheus's own value, request and query counters per view, is not what issue 18 asks for.

Every series is computed by a small number of queries that do not grow with the number of stores
(tests/test_metrics.py counts them); the per-store series read one row per store in one query.

Series and their cardinality (all names start with `shophosting_`):
- jobs: `jobs_active{kind,status}` (queued/running now), `jobs_finished_total{kind,outcome}` and the histogram
  `job_duration_seconds{kind,outcome}`. Cumulative over every finished job in the database (jobs are never
  pruned), with fixed buckets counted by the database, so `rate()` and `histogram_quantile()` work as for
  any histogram, and every web worker reports the same numbers. A job reaped before it started has no
  duration: it counts in jobs_finished_total but not in the histogram.
- queues: `rq_queue_jobs{queue,state}` from Redis (queued, started, scheduled, failed).
- stores: `stores{status}`, every status (0 when none).
- backups (an aggregate, not per store: alerting needs only "which is worst" and "how many"; the staff pages
  name the stores): `store_backup_oldest_age_seconds`, `stores_backup_overdue`, `system_backup_age_seconds`.
- disk, per store (label `store`, the id: never the domain, which is the customer's and changes):
  `store_disk_bytes` and `store_disk_allowance_bytes`, for live stores that were measured. One series each per
  store, which Prometheus handles at the platform's scale (thousands), and what capacity graphs need.
- certificates, aggregated like backups: `tls_certificate_soonest_expiry_seconds` (time left on the soonest
  certificate; negative when expired) and `tls_certificates_expiring` (stores with TLS issued whose
  certificate has less than TLS_EXPIRY_WARNING left, or is missing).
- Stripe webhooks: `stripe_webhooks_total{type,outcome}` from dj-stripe's WebhookEventTrigger (one row per
  delivery): outcome `processed`, `failed` (signature valid, processing raised) or `invalid` (refused; its
  type is `unknown`, since an unverified body names whatever its sender likes).
- `metrics_collector_up{collector}`: 1 when that group was read, 0 when it failed (Redis down, say); the other
  groups are still reported.

- store care (provisioning/care): `incidents_open{kind}` (kind `outage`: an availability check failed, or
  `warning`: certificate, disk or backups only; `platform`: a platform component's, provisioning/care/platform.py)
  and `check_latency_seconds{check}`, each check's mean latency
  across stores over the last CHECK_LATENCY_WINDOW_MINUTES (a gauge: the check history is in the database,
  and a gauge of its recent mean is what an alert on slow stores needs; per-store latency is on the staff pages).
"""

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import Case, CharField, Count, DurationField, ExpressionWrapper, F, Func, Max, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from djstripe.models import WebhookEventTrigger
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from backups.models import BackupRun, RunStatus
from billing.models import Plan
from provisioning import acme_client
from provisioning.care import selectors as care_selectors
from provisioning.models import ProvisioningJob
from shophosting.core import queues
from shophosting.core.scrape_access import scrape_allowed
from stores.models import Store
from stores.selectors import GB

logger = logging.getLogger(__name__)

PREFIX = "shophosting_"
# Upper bounds of the job-duration buckets, in seconds: a restart takes seconds, a provisioning a minute or two,
# a backup of a large store up to the backups queue's hour.
JOB_DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# A certificate with less than this left counts as expiring (the health check's threshold, issue 18); renewal
# starts at 30 days (provisioning.services.stores_tls_renew_due), so one here means renewal is failing.
TLS_EXPIRY_WARNING = timedelta(days=14)
LIVE_STATUSES = (Store.Status.ACTIVE, Store.Status.SUSPENDED)


def backup_overdue_after() -> timedelta:
    """A store whose last successful backup is older than this is overdue: two scheduled runs missed in a row,
    the staff dashboard's threshold (shophosting.staff.selectors.backup_status)."""
    return timedelta(hours=2 * settings.BACKUP_INTERVAL_HOURS)


def job_series() -> Iterable[Metric]:
    active = GaugeMetricFamily(
        f"{PREFIX}jobs_active", "Jobs queued or running now, by kind and status.", labels=["kind", "status"]
    )
    finished = CounterMetricFamily(
        f"{PREFIX}jobs_finished",
        "Jobs that ended, by kind and outcome (succeeded or failed).",
        labels=["kind", "outcome"],
    )
    for row in ProvisioningJob.objects.order_by().values("kind", "status").annotate(count=Count("id")):
        if row["status"] in ProvisioningJob.ACTIVE:
            active.add_metric([row["kind"], row["status"]], row["count"])
        else:
            finished.add_metric([row["kind"], row["status"]], row["count"])
    yield active
    yield finished

    durations = HistogramMetricFamily(
        f"{PREFIX}job_duration_seconds",
        "How long finished jobs ran (started to finished), by kind and outcome; every finished job that started.",
        labels=["kind", "outcome"],
    )
    ran = ProvisioningJob.objects.order_by().filter(
        status__in=(ProvisioningJob.Status.SUCCEEDED, ProvisioningJob.Status.FAILED),
        started_at__isnull=False,
        finished_at__isnull=False,
    )
    buckets = {
        f"le_{bound}": Count("id", filter=Q(finished_at__lte=F("started_at") + timedelta(seconds=bound)))
        for bound in JOB_DURATION_BUCKETS
    }
    elapsed = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    for row in ran.values("kind", "status").annotate(count=Count("id"), elapsed=Sum(elapsed), **buckets):
        cumulative = [(str(float(bound)), row[f"le_{bound}"]) for bound in JOB_DURATION_BUCKETS]
        total = row["elapsed"].total_seconds() if row["elapsed"] is not None else 0.0
        durations.add_metric([row["kind"], row["status"]], [*cumulative, ("+Inf", row["count"])], total)
    yield durations


def queue_series() -> Iterable[Metric]:
    depth = GaugeMetricFamily(
        f"{PREFIX}rq_queue_jobs",
        "RQ jobs per queue: waiting (queued), running (started), delayed (scheduled) and failed.",
        labels=["queue", "state"],
    )
    for stats in queues.queue_stats():
        for state in ("queued", "started", "scheduled", "failed"):
            depth.add_metric([stats.name, state], getattr(stats, state))
    yield depth


def store_series() -> Iterable[Metric]:
    by_status = dict(Store.objects.order_by().values_list("status").annotate(count=Count("id")))
    stores = GaugeMetricFamily(f"{PREFIX}stores", "Stores by status.", labels=["status"])
    for status in Store.Status.values:
        stores.add_metric([status], by_status.get(status, 0))
    yield stores


def backup_series() -> Iterable[Metric]:
    now = timezone.now()
    last_success = Max("backup_runs__finished_at", filter=Q(backup_runs__status=RunStatus.SUCCEEDED))
    # A store never backed up counts from its creation: it is overdue once the threshold has passed since.
    since = (
        Store.objects.order_by()
        .filter(status=Store.Status.ACTIVE)
        .annotate(since=Coalesce(last_success, "created_at"))
        .values_list("since", flat=True)
    )
    ages = [(now - moment).total_seconds() for moment in since]
    overdue_after = backup_overdue_after().total_seconds()
    yield GaugeMetricFamily(
        f"{PREFIX}store_backup_oldest_age_seconds",
        "Among active stores, the longest time since a store's last successful backup (or since its creation "
        "when it has none); 0 with no active store.",
        value=max(ages, default=0.0),
    )
    yield GaugeMetricFamily(
        f"{PREFIX}stores_backup_overdue",
        f"Active stores with no successful backup in the last {overdue_after / 3600:g} hours "
        "(twice BACKUP_INTERVAL_HOURS).",
        value=sum(1 for age in ages if age > overdue_after),
    )
    system = (
        BackupRun.objects.filter(kind=BackupRun.Kind.SYSTEM, status=RunStatus.SUCCEEDED)
        .order_by()
        .aggregate(last=Max("finished_at"))["last"]
    )
    if system is not None:  # no series before the first system backup: absent() alerts on that
        yield GaugeMetricFamily(
            f"{PREFIX}system_backup_age_seconds",
            "Time since the last successful system backup (the platform's database and files).",
            value=(now - system).total_seconds(),
        )


def disk_series() -> Iterable[Metric]:
    used = GaugeMetricFamily(
        f"{PREFIX}store_disk_bytes", "What a live store's volumes take, as last measured (hourly).", labels=["store"]
    )
    allowance = GaugeMetricFamily(
        f"{PREFIX}store_disk_allowance_bytes", "The disk allowance of a live store's plan.", labels=["store"]
    )
    allowances = dict(Plan.objects.values_list("pk", "disk_allowance_gb"))
    measured = Store.objects.order_by("pk").filter(status__in=LIVE_STATUSES, disk_bytes__isnull=False)
    for store_id, plan_id, disk_bytes in measured.values_list("pk", "plan_id", "disk_bytes"):
        used.add_metric([str(store_id)], disk_bytes)
        allowance.add_metric([str(store_id)], allowances[plan_id] * GB)
    yield used
    yield allowance


def certificate_series() -> Iterable[Metric]:
    """Read from the certificate files (as the staff certificates page does): no query per store, one file each."""
    now = timezone.now()
    remaining = []
    missing = 0
    issued = Store.objects.order_by().filter(status__in=LIVE_STATUSES, tls_status=Store.TLS.ISSUED)
    for store_id in issued.values_list("pk", flat=True):
        expires_at = acme_client.certificate_expires_at(domain=Store(pk=store_id).proxy_key)
        if expires_at is None:
            missing += 1
        else:
            remaining.append((expires_at - now).total_seconds())
    if remaining:  # no series without a certificate: there is nothing to expire
        yield GaugeMetricFamily(
            f"{PREFIX}tls_certificate_soonest_expiry_seconds",
            "Time left on the live stores' soonest-expiring certificate (negative once expired).",
            value=min(remaining),
        )
    warning = TLS_EXPIRY_WARNING.total_seconds()
    yield GaugeMetricFamily(
        f"{PREFIX}tls_certificates_expiring",
        f"Live stores with TLS issued whose certificate has less than {TLS_EXPIRY_WARNING.days} days left, "
        "or whose certificate file is missing.",
        value=missing + sum(1 for seconds in remaining if seconds < warning),
    )


class JsonType(Func):
    """The top-level "type" of a JSON text column: MariaDB's JSON_VALUE (NULL for a body that is not JSON); on
    SQLite (the demo), json_extract guarded by json_valid, since it raises on malformed JSON."""

    template = "JSON_VALUE(%(expressions)s, '$.type')"
    output_field = CharField()

    def as_sqlite(self, compiler, connection, **extra):
        template = "CASE WHEN json_valid(%(expressions)s) THEN json_extract(%(expressions)s, '$.type') END"
        return self.as_sql(compiler, connection, template=template, **extra)


def webhook_series() -> Iterable[Metric]:
    deliveries = CounterMetricFamily(
        f"{PREFIX}stripe_webhooks",
        "Stripe webhook deliveries by event type and outcome: processed, failed (processing raised) or invalid "
        "(refused, e.g. a bad signature; type unknown).",
        labels=["type", "outcome"],
    )
    # A delivery whose processing raised keeps no Event row (so Stripe's redelivery is processed afresh): its
    # type is read from its body, which the valid signature vouches for. A refused delivery's body is whatever
    # its sender wrote, so its type is never read (a label from it would let anyone add series).
    signed_type = Coalesce("event__type", JsonType("body"))
    rows = (
        WebhookEventTrigger.objects.order_by()
        .annotate(event_type=Case(When(valid=True, then=signed_type), default=Value("unknown")))
        .values("event_type", "valid", "processed")
        .annotate(count=Count("id"))
    )
    totals: dict[tuple[str, str], int] = {}
    for row in rows:
        outcome = "invalid" if not row["valid"] else "processed" if row["processed"] else "failed"
        key = (row["event_type"] or "unknown", outcome)
        totals[key] = totals.get(key, 0) + row["count"]
    for (event_type, outcome), count in sorted(totals.items()):
        deliveries.add_metric([event_type, outcome], count)
    yield deliveries


# The groups, each read on its own: one that fails is reported as down and the others still answer.
CHECK_LATENCY_WINDOW_MINUTES = 15


def care_series() -> Iterable[Metric]:
    incidents = GaugeMetricFamily(
        f"{PREFIX}incidents_open",
        "Open incidents: a store's outage (an availability check failed) or warning (certificate, disk or backups),"
        " or platform (the backup repository, workers, a Docker engine, nginx).",
        labels=["kind"],
    )
    open_by_kind = care_selectors.incidents_open_by_kind()
    for kind in ("outage", "warning", "platform"):
        incidents.add_metric([kind], open_by_kind.get(kind, 0))
    yield incidents
    latency = GaugeMetricFamily(
        f"{PREFIX}check_latency_seconds",
        f"Mean latency of each store check across stores over the last {CHECK_LATENCY_WINDOW_MINUTES} minutes.",
        labels=["check"],
    )
    for check, milliseconds in sorted(
        care_selectors.check_latency_recent(minutes=CHECK_LATENCY_WINDOW_MINUTES).items()
    ):
        latency.add_metric([check], milliseconds / 1000)
    yield latency


COLLECTORS: dict[str, Callable[[], Iterable[Metric]]] = {
    "jobs": job_series,
    "queues": queue_series,
    "stores": store_series,
    "backups": backup_series,
    "disk": disk_series,
    "certificates": certificate_series,
    "webhooks": webhook_series,
    "care": care_series,
}


class PlatformCollector(Collector):
    """Reads every group at scrape time (prometheus-client calls collect() once per scrape)."""

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}metrics_collector_up",
            "1 when this group of series was read on this scrape, 0 when reading it failed (see the web log).",
            labels=["collector"],
        )
        for name, series in COLLECTORS.items():
            try:
                families = list(series())
            except Exception:  # noqa: BLE001 - one broken source must not hide the others' series
                logger.exception("metrics: the %s series could not be read", name)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


def metrics_text() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector())
    return generate_latest(registry)


@never_cache
@require_safe
def metrics_view(request):
    """Prometheus's text format, for allowed addresses or the bearer token (settings METRICS_*). Anyone else gets
    the 404 of a missing page, so the endpoint's existence is not revealed. Before any query: a refused
    request costs nothing.

    No middleware needs an exemption: a scrape has no session or user, so the sign-in gates, the idle timeout
    and CSRF (GET only) pass it by; the CSP header is harmless on a text body; no rate limit applies, and the
    token (at least 32 characters, compared in constant time) cannot be guessed through this view."""
    if not scrape_allowed(request, networks=settings.METRICS_ALLOWED_NETWORKS, token=settings.METRICS_BEARER_TOKEN):
        raise Http404
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
