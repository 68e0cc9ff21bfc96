from dataclasses import dataclass
from datetime import timedelta
from statistics import median

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from provisioning import acme_client, proxy
from provisioning.kinds import kind_get
from provisioning.models import JobLogLine, JobStep, ProvisioningJob, Rollout, RolloutStore
from stores.models import StoreName

LOG_TAIL_LINES = 30
ETA_SAMPLE_JOBS = 50


def job_latest_for_store(store_id: int) -> ProvisioningJob | None:
    return ProvisioningJob.objects.filter(store_id=store_id).order_by("-created_at", "-id").first()


SETUP_KINDS = (ProvisioningJob.Kind.PROVISION, ProvisioningJob.Kind.RETRY)


def orders_being_set_up(*, host_id: int | None) -> int:
    """Paying customers' stores being set up now (provision and retry jobs queued or running) on this host, or
    not placed yet (they may land on any host); every host's when `host_id` is None."""
    jobs = ProvisioningJob.objects.filter(kind__in=SETUP_KINDS, status__in=ProvisioningJob.ACTIVE)
    if host_id is not None:
        jobs = jobs.filter(Q(store__host_id=host_id) | Q(store__host__isnull=True))
    return jobs.count()


def job_setup_latest_for_store(store_id: int) -> ProvisioningJob | None:
    """The job that sets the store up (its provisioning, or the latest retry of it): what the checkout page
    follows, even once the store's first backup, queued as it goes live, is its latest job."""
    jobs = ProvisioningJob.objects.filter(store_id=store_id, kind__in=SETUP_KINDS)
    return jobs.order_by("-created_at", "-id").first()


def step_median_durations(kind: str, names: list[str]) -> dict[str, float]:
    """Median seconds per step name over recent successful runs of that step in jobs of the same kind (a
    restore's "stop" is not a suspend's)."""
    medians = {}
    for name in names:
        steps = (
            JobStep.objects.filter(
                job__kind=kind, name=name, status=JobStep.Status.SUCCEEDED, finished_at__isnull=False
            )
            .order_by("-finished_at")
            .values_list("started_at", "finished_at")[:ETA_SAMPLE_JOBS]
        )
        durations = [(finished - started).total_seconds() for started, finished in steps if started]
        if durations:
            medians[name] = median(durations)
    return medians


def _progress_common(job: ProvisioningJob, steps: list[JobStep], *, title) -> dict:
    """The checklist and ETA: step names, statuses and timings, with each step's title from `title(step)`."""
    now = timezone.now()
    medians = step_median_durations(job.kind, [s.name for s in steps if s.status in ("pending", "running")])
    eta = None
    if job.status in ProvisioningJob.ACTIVE:
        eta = 0.0
        for step in steps:
            expected = medians.get(step.name)
            if step.status == JobStep.Status.PENDING:
                eta = None if expected is None or eta is None else eta + expected
            elif step.status == JobStep.Status.RUNNING and eta is not None:
                elapsed = (now - step.started_at).total_seconds() if step.started_at else 0
                eta = None if expected is None else eta + max(expected - elapsed, 0)
    return {
        "job": {"id": job.pk, "kind": job.get_kind_display(), "status": job.status, "active": job.status in job.ACTIVE},
        "steps": [
            {
                "title": title(s),
                "status": s.status,
                "seconds": round(s.duration_seconds, 1)
                if s.duration_seconds is not None
                else (round((now - s.started_at).total_seconds(), 1) if s.started_at else None),
            }
            for s in steps
        ],
        "eta_seconds": round(eta) if eta is not None else None,
    }


def job_progress_for_staff(job: ProvisioningJob) -> dict:
    """The checklist, the ETA and the log tail as the steps wrote it: hosts, ports, container names and
    engine errors included. Staff pages only."""
    steps = list(job.steps.order_by("order"))
    tail = list(
        JobLogLine.objects.filter(step__job=job)
        .order_by("-id")
        .values("created_at", "message", "step__title")[:LOG_TAIL_LINES]
    )
    return {
        **_progress_common(job, steps, title=lambda step: step.title),
        "log": [
            {"time": line["created_at"].strftime("%H:%M:%S"), "step": line["step__title"], "message": line["message"]}
            for line in reversed(tail)
        ],
    }


# What a customer reads about a step, by its status. The customer's view is built only from these words,
# the step titles in the code (provisioning/steps.py) and timings: never from log lines, step output or
# errors, which name hosts, ports, containers and the engine's own words.
CUSTOMER_STEP_WORDS = {
    JobStep.Status.RUNNING: "in progress",
    JobStep.Status.SUCCEEDED: "done",
    JobStep.Status.SKIPPED: "not needed",
    JobStep.Status.FAILED: "stopped here; our team has been told and will look into it",
}


def _customer_title(job: ProvisioningJob, step: JobStep) -> str:
    """The step's title from its kind's plan in the code, never from the row (which a step could rename)."""
    try:
        known = kind_get(job.kind).step_by_name.get(step.name)
    except LookupError:
        known = None
    return known.title if known else f"Step {step.order}"


def job_progress_for_customer(job: ProvisioningJob) -> dict:
    """What the store's owner sees of a job (the store page and the progress.json it polls): the checklist,
    the ETA and one plain line per step that has started. No host names, ports, container names or raw
    errors can reach it: nothing here reads the log lines, the step output or the job's error."""
    steps = list(job.steps.order_by("order"))
    log = []
    for step in steps:
        when = step.finished_at or step.started_at
        if step.status in CUSTOMER_STEP_WORDS and when is not None:
            words = CUSTOMER_STEP_WORDS[step.status]
            log.append({"time": when.strftime("%H:%M:%S"), "step": _customer_title(job, step), "message": words})
    return {**_progress_common(job, steps, title=lambda step: _customer_title(job, step)), "log": log}


def rollout_progress(rollout: Rollout) -> dict[str, int]:
    """How far a rollout got, for staff: stores updated, failed (put back or not), skipped and still to come
    (waiting or updating now), and cancelled ones if any. Reads prefetched targets when there are."""
    T = RolloutStore.Status
    statuses = [target.status for target in rollout.targets.all()]
    counts = {
        "done": statuses.count(T.UPDATED),
        "failed": statuses.count(T.ROLLED_BACK) + statuses.count(T.FAILED),
        "skipped": statuses.count(T.SKIPPED),
        "pending": statuses.count(T.PENDING) + statuses.count(T.UPDATING),
    }
    if T.CANCELLED in statuses:
        counts["cancelled"] = statuses.count(T.CANCELLED)
    return counts


FIREWALL_WINDOW = timedelta(days=7)


def store_firewall(store) -> dict | None:
    """The store page's firewall line: None where the store has none (a plan without advanced_security, or
    no nginx in front of the stores), so the page claims nothing; else how many requests it blocked in the
    last 7 days, read from the end of its firewall log (proxy.firewall_blocks_count, capped per view)."""
    if not (settings.NGINX_ENABLED and store.plan.advanced_security):
        return None
    blocked, at_least = proxy.firewall_blocks_count(store_id=store.pk, since=timezone.now() - FIREWALL_WINDOW)
    return {"blocked": blocked, "at_least": at_least, "days": FIREWALL_WINDOW.days}


def store_addresses(store) -> list[dict]:
    """The store page's addresses: every name the store answers on, primary first, each with the link that
    works now (https when the certificate covers it and is valid), whether HTTPS is on for it, and a
    message when it does not point at the platform."""
    from stores.selectors import store_names_served

    expires_at = acme_client.certificate_expires_at(domain=store.proxy_key) if settings.TLS_ENABLED else None
    covered = (
        acme_client.certificate_names(domain=store.proxy_key) if expires_at and expires_at > timezone.now() else []
    )
    http_port = settings.NGINX_LISTEN_HTTP.rpartition(":")[2]
    https_port = settings.NGINX_LISTEN_HTTPS.rpartition(":")[2]
    addresses = []
    for row in store_names_served(store):
        https = row.name in covered
        port = (https_port if https else http_port) if settings.NGINX_ENABLED else ""
        suffix = "" if port in ("", "80", "443") else f":{port}"
        addresses.append(
            {
                "id": row.pk,
                "name": row.name,
                "kind": row.get_kind_display(),
                "can_be_primary": row.status == row.Status.ACTIVE and not row.is_primary,
                "can_remove": row.kind == row.Kind.CUSTOM and not row.is_primary,
                "is_platform": row.kind == row.Kind.PLATFORM,
                "is_primary": row.is_primary,
                "status": row.status,
                "status_display": row.get_status_display(),
                "message": row.status_message,
                "https": https,
                "url": f"{'https' if https else 'http'}://{row.name}{suffix}/",
            }
        )
    return addresses


def store_domains_waiting(store) -> list[dict]:
    """The store page's custom domains waiting for proof, grouped by the TXT record that proves them (a domain
    and its www. alias share one): the exact records to create, and each name's last check."""
    groups: dict[str, dict] = {}
    for row in store.names.filter(status=StoreName.Status.PENDING).order_by("proof_domain", "name"):
        group = groups.setdefault(
            row.proof_record,
            {
                "record": row.proof_record,
                "token": row.proof_token,
                "names": [],
                "addresses": [a.strip() for a in settings.PLATFORM_PUBLIC_ADDRESSES if a.strip()],
            },
        )
        group["names"].append(
            {
                "id": row.pk,
                "name": row.name,
                "checked_at": row.checked_at,
                "message": row.status_message,
                "status_display": row.get_status_display(),
            }
        )
    return list(groups.values())


@dataclass(frozen=True)
class HostJobs:
    """A host's queue depth: its jobs running, queued, and of those queued, put back waiting for a slot."""

    host_id: int | None
    host_name: str
    slots: int
    running: int
    queued: int
    waiting: int


def host_jobs_depth() -> list[HostJobs]:
    """Queue depth per host, from the job rows in one query: the hosts with a job queued or running (jobs of
    stores not placed yet come under no host). `waiting` counts queued jobs that a worker already put back
    because every slot of their host was taken (provisioning/host_slots.py)."""
    Job = ProvisioningJob
    rows = (
        Job.objects.filter(status__in=Job.ACTIVE)
        .values("store__host_id", "store__host__name", "store__host__job_slots")
        .annotate(
            running=Count("pk", filter=Q(status=Job.Status.RUNNING)),
            queued=Count("pk", filter=Q(status=Job.Status.QUEUED)),
            waiting=Count("pk", filter=Q(status=Job.Status.QUEUED, host_waits__gt=0)),
        )
        .order_by("store__host__name")
    )
    return [
        HostJobs(
            host_id=row["store__host_id"],
            host_name=row["store__host__name"] or "not placed yet",
            slots=row["store__host__job_slots"] or settings.HOST_JOB_SLOTS,
            running=row["running"],
            queued=row["queued"],
            waiting=row["waiting"],
        )
        for row in rows
    ]
