"""Rounds of checks, incidents, notifications and the history's downsampling (see the package docstring)."""

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from provisioning.care.checks import FAILED, Verdict, checks_registered
from provisioning.care.models import CheckHourly, CheckResult, CheckRound, Incident, IncidentEvent, PlatformCheck
from provisioning.models import ProvisioningJob
from shophosting.core.emails import email_send
from shophosting.core.queues import enqueue_recorded, rq_job_pending
from shophosting.core.transitions import transition
from stores.models import Store

logger = logging.getLogger(__name__)

# Operations that do not take the store down: a round during them is judged like any other.
NON_DISRUPTIVE_KINDS = frozenset({"backup", "verify"})
CHECKED_STATUSES = (Store.Status.ACTIVE, Store.Status.SUSPENDED)
INCIDENT_ALLOWED_FROM = {Incident.Status.CLOSED: {Incident.Status.OPEN}}
Verdicts = list[tuple[str, bool, Verdict, int]]  # (check name, decides availability, verdict, milliseconds)


# --- Settings ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CareSettings:
    interval_minutes: int
    threshold: int
    page_budget_seconds: float
    history_days: int
    certificate_min_days: int
    webhook_url: str


def care_settings() -> CareSettings:
    """The CARE_* settings, checked: a bad value stops the checks with a message naming it."""

    def whole(name: str, low: int, high: int) -> int:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ImproperlyConfigured(f"{name} must be a whole number from {low} to {high}, not {value!r}")
        return value

    budget = settings.CARE_PAGE_BUDGET_SECONDS
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget <= 60:
        raise ImproperlyConfigured(f"CARE_PAGE_BUDGET_SECONDS must be more than 0 and at most 60, not {budget!r}")
    webhook = settings.CARE_WEBHOOK_URL or ""
    if webhook and not webhook.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"CARE_WEBHOOK_URL must be an http:// or https:// URL (or empty), not {webhook!r}")
    return CareSettings(
        interval_minutes=whole("CARE_CHECK_INTERVAL_MINUTES", 1, 24 * 60),
        threshold=whole("CARE_INCIDENT_THRESHOLD", 1, 100),
        page_budget_seconds=float(budget),
        history_days=whole("CARE_HISTORY_DAYS", 1, 3650),
        certificate_min_days=whole("CARE_CERTIFICATE_MIN_DAYS", 0, 89),
        webhook_url=webhook,
    )


# --- Scheduling -------------------------------------------------------------------------------------------


def stores_checks_enqueue_due(*, now: datetime | None = None) -> list[int]:
    """Enqueue a round for each checked store whose slot is this minute (selectors.store_slot), so the
    stores are spread over the interval; one still queued or running from before is not queued twice."""
    from provisioning import jobs  # jobs import services lazily
    from provisioning.care.selectors import store_ids_due

    care = care_settings()
    incidents_close_of_stores_not_live()
    due = store_ids_due(now=now or timezone.now(), interval_minutes=care.interval_minutes)
    for store_id in due:
        job_id = f"care-checks-{store_id}"
        if not rq_job_pending(queue="default", job_id=job_id):
            enqueue_recorded(
                queue="default", function=jobs.store_checks_run, args=(store_id,), job_id=job_id, job_timeout=120
            )
    return due


# --- One round --------------------------------------------------------------------------------------------


def _maintenance(store: Store, *, since: datetime) -> str:
    """Why the platform itself has the store down at some point since `since`, in words, or ""."""
    if store.status == Store.Status.SUSPENDED:
        return "the store is suspended"
    job = (
        ProvisioningJob.objects.filter(store_id=store.pk)
        .exclude(kind__in=NON_DISRUPTIVE_KINDS)
        .filter(Q(status__in=ProvisioningJob.ACTIVE) | Q(finished_at__gte=since))
        .order_by("-pk")
        .first()
    )
    return f"{job.get_kind_display().lower()} (job #{job.pk})" if job else ""


def store_checks_run(*, store_id: int, now: datetime | None = None) -> CheckRound | None:
    """Run every registered check against the store, once, and record the round; None for a store that is
    not live. Read-only probes: no store lock, no job, no transaction held while probing. `now` places the
    round in time (tests of the history)."""
    care_settings()  # a bad setting stops here, before any probe
    store = Store.objects.select_related("host", "plan").filter(pk=store_id).first()
    if store is None or store.status not in CHECKED_STATUSES or store.host is None:
        return None
    started_at = timezone.now()
    started = time.monotonic()
    reason = _maintenance(store, since=started_at)
    verdicts: Verdicts = []
    if not reason:
        for check in checks_registered():
            check_started = time.monotonic()
            try:
                verdict = check.run(store)
            except Exception as exc:  # noqa: BLE001 - one broken check (or engine) must not hide the others
                logger.exception("store %s: the %s check raised", store.pk, check.name)
                verdict = Verdict(FAILED, f"the check could not run: {type(exc).__name__}: {exc}")
            verdicts.append((check.name, check.availability, verdict, _ms(time.monotonic() - check_started)))
        # An operation that began while the round ran (a restart, a restore) explains what it saw.
        store.refresh_from_db(fields=["status"])
        reason = _maintenance(store, since=started_at)
    latency = _ms(time.monotonic() - started)
    return store_round_record(
        store_id=store.pk, checked_at=now or started_at, verdicts=verdicts, maintenance=reason, latency_ms=latency
    )


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


@transaction.atomic
def store_round_record(
    *, store_id: int, checked_at: datetime, verdicts: Verdicts, maintenance: str = "", latency_ms: int = 0
) -> CheckRound:
    """Record a round and what follows from it: a passing round closes the store's open incident, the
    CARE_INCIDENT_THRESHOLD-th failing round in a row opens one, and a maintenance round does neither."""
    care = care_settings()
    store = Store.objects.get(pk=store_id)
    failed = [(name, availability, v) for name, availability, v, _ in verdicts if v.result == FAILED]
    if maintenance:
        outcome, note = CheckRound.Outcome.MAINTENANCE, maintenance
    elif any(availability for _, availability, _ in failed):
        outcome, note = CheckRound.Outcome.DOWN, ""
    elif failed:
        outcome, note = CheckRound.Outcome.DEGRADED, ""
    else:
        outcome, note = CheckRound.Outcome.UP, ""
    round_ = CheckRound.objects.create(
        store=store, checked_at=checked_at, outcome=outcome, latency_ms=latency_ms, note=note[:300]
    )
    CheckResult.objects.bulk_create(
        CheckResult(round=round_, check_name=name, result=v.result, latency_ms=ms, message=v.message[:500])
        for name, _, v, ms in verdicts
    )
    if outcome == CheckRound.Outcome.UP:
        _incident_close(store=store, at=checked_at)
    elif outcome != CheckRound.Outcome.MAINTENANCE:
        _incident_open_if_due(store=store, round_=round_, failed=failed, care=care)
    return round_


# --- Incidents --------------------------------------------------------------------------------------------


def _incident_open_if_due(*, store, round_, failed, care: CareSettings) -> None:
    """Open an incident when the last `threshold` rounds all failed (a maintenance round breaks the run: the
    failures around it may be the operation's). One open incident per store; later failing rounds keep it."""
    summary = "; ".join(f"{name.replace('_', ' ')}: {v.message}" for name, _, v in failed)
    checks = ",".join(name for name, _, _ in failed)[:300]
    current = Incident.objects.select_for_update().filter(open_for_store=store.pk).first()
    if current is not None:
        if round_.outcome == CheckRound.Outcome.DOWN and not current.affects_uptime:
            # A warning became an outage: the same incident, but everyone is told again.
            current.affects_uptime, current.checks, current.summary = True, checks, summary
            current.save(update_fields=["affects_uptime", "checks", "summary", "updated_at"])
            IncidentEvent.objects.create(
                incident=current, old_status=current.status, new_status=current.status, note="now an outage"
            )
            transaction.on_commit(lambda: incident_notify(incident_id=current.pk))
        return
    last = list(CheckRound.objects.filter(store=store).order_by("-checked_at", "-id")[: care.threshold])
    failing = (CheckRound.Outcome.DOWN, CheckRound.Outcome.DEGRADED)
    if len(last) < care.threshold or any(r.outcome not in failing for r in last):
        return
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                store=store,
                checks=checks,
                summary=summary,
                affects_uptime=round_.outcome == CheckRound.Outcome.DOWN,
                open_for_store=store.pk,
                opened_at=round_.checked_at,
            )
    except IntegrityError:  # another round opened it a moment ago
        return
    IncidentEvent.objects.create(
        incident=incident, old_status="", new_status=Incident.Status.OPEN, note=f"{care.threshold} failing rounds"
    )
    transaction.on_commit(lambda: incident_notify(incident_id=incident.pk))


def _incident_close(*, store, at) -> None:
    incident = Incident.objects.filter(open_for_store=store.pk).first()
    if incident is not None:
        incident_close(incident_id=incident.pk, at=at, note="every check passes again")


def incident_close(*, incident_id: int, at, note: str, notify: bool = True) -> None:
    """The one way an incident closes, a store's or a platform component's: its status under a row lock with
    an event, its open marker cleared (so the next failure opens a new one), and, unless the platform took the
    store out of service itself, everyone told after the commit."""
    transition(
        Incident,
        incident_id,
        Incident.Status.CLOSED,
        allowed_from=INCIDENT_ALLOWED_FROM,
        event_model=IncidentEvent,
        event_link="incident",
        note=note,
        same_is_noop=True,
        closed_at=at,
        open_for_store=None,
        open_for_component=None,
    )
    if notify:
        transaction.on_commit(lambda: incident_notify(incident_id=incident_id))


def incidents_close_of_stores_not_live() -> int:
    """Close, without paging anyone, the open incidents of stores the platform took out of service since
    (suspended, deleted): their rounds are maintenance, or there are none, so no passing round would."""
    closed = 0
    store_incidents = Incident.objects.filter(status=Incident.Status.OPEN, store__isnull=False)
    for incident in store_incidents.exclude(store__status=Store.Status.ACTIVE):
        incident_close(
            incident_id=incident.pk,
            at=timezone.now(),
            note=f"the store is {incident.store.get_status_display().lower()}: no longer checked as live",
            notify=False,
        )
        closed += 1
    return closed


def incident_notify(*, incident_id: int) -> None:
    """Tell the merchant (a store's incident only), staff (CARE_STAFF_EMAILS) and the webhook (CARE_WEBHOOK_URL)
    that an incident opened or closed. Called after the commit; a mail or webhook that fails is logged, never
    raised."""
    incident = Incident.objects.select_related("store__customer", "store__plan").get(pk=incident_id)
    store = incident.store
    context = {
        "incident": incident,
        "store": store,
        "store_path": reverse("stores:detail", args=[store.pk]) if store else "",
        "admin_path": reverse("admin:provisioning_incident_change", args=[incident.pk]),
    }
    opened = incident.status == Incident.Status.OPEN
    sends = []
    if store is not None:  # a platform incident is staff's alone
        sends.append(("incident_opened" if opened else "incident_closed", [store.customer.email]))
    if settings.CARE_STAFF_EMAILS:
        sends.append(("incident_staff", list(settings.CARE_STAFF_EMAILS)))
    for template, to in sends:
        try:
            email_send(template=template, to=to, context=context)
        except Exception:  # noqa: BLE001 - a mail server down must not lose the webhook or the other mail
            logger.exception("incident %s: the %s mail was not sent", incident.pk, template)
    if settings.CARE_WEBHOOK_URL:
        webhook_post(url=settings.CARE_WEBHOOK_URL, payload=_webhook_payload(incident, context))


def _webhook_payload(incident: Incident, context: dict) -> dict:
    store = incident.store
    state = "opened" if incident.status == Incident.Status.OPEN else "closed"
    where = f"Store {store.domain}" if store else f"Platform ({incident.component})"
    return {
        "event": f"incident.{state}",
        "text": f"{where}: incident #{incident.pk} {state}. {incident.summary}",
        "incident": {
            "id": incident.pk,
            "status": incident.status,
            "checks": incident.checks.split(","),
            "summary": incident.summary,
            "opened_at": incident.opened_at.isoformat(),
            "closed_at": incident.closed_at.isoformat() if incident.closed_at else None,
            "url": settings.SITE_URL.rstrip("/") + context["admin_path"],
        },
        "store": {"id": store.pk, "domain": store.domain} if store else None,
        "component": incident.component or None,
    }


def webhook_post(*, url: str, payload: dict) -> bool:
    """POST `payload` as JSON (Slack, Mattermost and Rocket.Chat incoming webhooks read its `text`)."""
    request = urllib.request.Request(  # noqa: S310 - the operator's URL, checked to be http(s) by care_settings
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return 200 <= response.status < 300
    except (OSError, urllib.error.URLError) as exc:
        logger.warning("the incident webhook %s did not take the event: %s", url, exc)
        return False


# --- History ----------------------------------------------------------------------------------------------


def check_history_downsample(*, now: datetime | None = None) -> int:
    """Fold rounds older than CARE_HISTORY_DAYS into one CheckHourly row per store and hour (counts by outcome,
    latency average and maximum), then delete them and their results. Returns how many rounds were folded.
    Repeatable: an hour folded before gets the newly old rounds added to its counts."""
    care = care_settings()
    cutoff = (now or timezone.now()) - timedelta(days=care.history_days)
    old = CheckRound.objects.filter(checked_at__lt=cutoff)
    buckets: dict[tuple[int, datetime], list[tuple[str, int]]] = {}
    ids = []
    for pk, store_id, checked_at, outcome, latency in old.values_list(
        "pk", "store_id", "checked_at", "outcome", "latency_ms"
    ).iterator():
        hour = checked_at.replace(minute=0, second=0, microsecond=0)
        buckets.setdefault((store_id, hour), []).append((outcome, latency))
        ids.append(pk)
    with transaction.atomic():
        for (store_id, hour), rounds in buckets.items():
            row, _ = CheckHourly.objects.select_for_update().get_or_create(store_id=store_id, hour=hour)
            before = row.up + row.down + row.maintenance
            latencies = [latency for _, latency in rounds]
            row.up += sum(1 for outcome, _ in rounds if outcome in (CheckRound.Outcome.UP, CheckRound.Outcome.DEGRADED))
            row.down += sum(1 for outcome, _ in rounds if outcome == CheckRound.Outcome.DOWN)
            row.maintenance += sum(1 for outcome, _ in rounds if outcome == CheckRound.Outcome.MAINTENANCE)
            row.latency_ms_avg = round((row.latency_ms_avg * before + sum(latencies)) / (before + len(rounds)))
            row.latency_ms_max = max(row.latency_ms_max, *latencies)
            row.save()
        for start in range(0, len(ids), 1000):
            CheckRound.objects.filter(pk__in=ids[start : start + 1000]).delete()
        # The platform's checks are not downsampled: past the history they go (their incidents stay).
        PlatformCheck.objects.filter(checked_at__lt=cutoff).delete()
    return len(ids)
