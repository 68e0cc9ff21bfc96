from statistics import median

from django.utils import timezone

from provisioning.models import JobLogLine, JobStep, ProvisioningJob

LOG_TAIL_LINES = 30
ETA_SAMPLE_JOBS = 50


def job_latest_for_store(store_id: int) -> ProvisioningJob | None:
    return ProvisioningJob.objects.filter(store_id=store_id).order_by("-created_at", "-id").first()


def step_median_durations(names: list[str]) -> dict[str, float]:
    """Median seconds per step name over recent successful runs of that step."""
    medians = {}
    for name in names:
        steps = (
            JobStep.objects.filter(name=name, status=JobStep.Status.SUCCEEDED, finished_at__isnull=False)
            .order_by("-finished_at")
            .values_list("started_at", "finished_at")[:ETA_SAMPLE_JOBS]
        )
        durations = [(finished - started).total_seconds() for started, finished in steps if started]
        if durations:
            medians[name] = median(durations)
    return medians


def job_progress(job: ProvisioningJob) -> dict:
    """Everything a progress checklist shows: steps with status and duration, the log tail and an ETA."""
    steps = list(job.steps.order_by("order"))
    now = timezone.now()
    medians = step_median_durations([s.name for s in steps if s.status in ("pending", "running")])
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
    tail = list(
        JobLogLine.objects.filter(step__job=job)
        .order_by("-id")
        .values("created_at", "message", "step__title")[:LOG_TAIL_LINES]
    )
    return {
        "job": {"id": job.pk, "kind": job.get_kind_display(), "status": job.status, "active": job.status in job.ACTIVE},
        "steps": [
            {
                "title": s.title,
                "status": s.status,
                "seconds": round(s.duration_seconds, 1)
                if s.duration_seconds is not None
                else (round((now - s.started_at).total_seconds(), 1) if s.started_at else None),
            }
            for s in steps
        ],
        "log": [
            {"time": line["created_at"].strftime("%H:%M:%S"), "step": line["step__title"], "message": line["message"]}
            for line in reversed(tail)
        ],
        "eta_seconds": round(eta) if eta is not None else None,
    }
