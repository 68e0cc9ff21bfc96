"""Reads of store care: slots, the stores due, a store's state and incidents, uptime per month, SLA breaches,
and the figures a metrics collector reads (`incidents_open_count`, `check_latency_recent`)."""

import calendar
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg, BooleanField, Count, ExpressionWrapper, Q, Sum
from django.utils import timezone

from provisioning.care.checks import checks_registered
from provisioning.care.models import CheckHourly, CheckResult, CheckRound, Incident, PlatformCheck
from stores.models import Store

CHECKED_STATUSES = (Store.Status.ACTIVE, Store.Status.SUSPENDED)


def store_slot(store_id: int, *, interval_minutes: int) -> int:
    """The minute of the interval in which the store is checked: a stable hash of its id, so stores spread
    evenly over the interval whatever their ids, and each keeps its slot from one interval to the next."""
    return zlib.crc32(f"store-{store_id}".encode()) % interval_minutes


def store_ids_due(*, now: datetime, interval_minutes: int) -> list[int]:
    """The checked stores whose slot is `now`'s minute of the interval (minutes counted from the epoch)."""
    minute = int(now.timestamp() // 60) % interval_minutes
    ids = Store.objects.filter(status__in=CHECKED_STATUSES).exclude(host=None).values_list("pk", flat=True)
    return [pk for pk in ids if store_slot(pk, interval_minutes=interval_minutes) == minute]


# --- A store ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCare:
    state: str  # "unknown" (not checked yet), "up", "degraded", "down", "maintenance"
    last_round: CheckRound | None
    open_incident: Incident | None
    incidents: list[Incident]
    uptime: "Uptime"


def store_care(store: Store, *, now: datetime | None = None) -> StoreCare:
    """What the store page shows: its state as the last round saw it, the open incident, the recent ones,
    and this month's uptime."""
    now = now or timezone.now()
    last = CheckRound.objects.filter(store=store).prefetch_related("results").first()
    incidents = list(Incident.objects.filter(store=store)[:5])
    open_incident = next((i for i in incidents if i.status == Incident.Status.OPEN), None)
    state = "down" if open_incident and open_incident.affects_uptime else (last.outcome if last else "unknown")
    return StoreCare(
        state=state,
        last_round=last,
        open_incident=open_incident,
        incidents=incidents,
        uptime=store_uptime_month(store, year=now.year, month=now.month),
    )


def check_titles() -> dict[str, str]:
    return {check.name: check.title for check in checks_registered()}


# --- Uptime -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Uptime:
    year: int
    month: int
    up: int  # rounds; degraded rounds (only a warning failed) count as up
    down: int
    maintenance: int  # rounds during platform maintenance: neither up nor down
    interval_minutes: int
    target: Decimal | None  # the plan's SLA target, for sla_uptime plans only

    @property
    def percent(self) -> Decimal | None:
        """Up rounds over rounds that were up or down (maintenance is counted apart), to 3 places; None
        before the first round."""
        judged = self.up + self.down
        if not judged:
            return None
        return (Decimal(100 * self.up) / judged).quantize(Decimal("0.001"))

    @property
    def down_minutes(self) -> int:
        return self.down * self.interval_minutes

    @property
    def maintenance_minutes(self) -> int:
        return self.maintenance * self.interval_minutes

    @property
    def breached(self) -> bool:
        return self.target is not None and self.percent is not None and self.percent < self.target


def _month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    if not 1 <= month <= 12:
        raise ValueError(f"month must be from 1 to 12, not {month}")
    start = datetime(year, month, 1, tzinfo=UTC)
    return start, start + timedelta(days=calendar.monthrange(year, month)[1])


def uptime_counts(store_ids: list[int], *, year: int, month: int) -> dict[int, tuple[int, int, int]]:
    """store id -> (up, down, maintenance) rounds in the month, from the raw rounds and the hourly rows."""
    start, end = _month_bounds(year, month)
    counts = {pk: [0, 0, 0] for pk in store_ids}
    outcome = CheckRound.Outcome
    raw = (
        CheckRound.objects.filter(store_id__in=store_ids, checked_at__gte=start, checked_at__lt=end)
        .values("store_id")
        .annotate(
            up=Count("pk", filter=Q(outcome__in=[outcome.UP, outcome.DEGRADED])),
            down=Count("pk", filter=Q(outcome=outcome.DOWN)),
            maintenance=Count("pk", filter=Q(outcome=outcome.MAINTENANCE)),
        )
    )
    hourly = (
        CheckHourly.objects.filter(store_id__in=store_ids, hour__gte=start, hour__lt=end)
        .values("store_id")
        .annotate(up=Sum("up"), down=Sum("down"), maintenance=Sum("maintenance"))
    )
    for row in (*raw, *hourly):
        found = counts[row["store_id"]]
        found[0] += row["up"] or 0
        found[1] += row["down"] or 0
        found[2] += row["maintenance"] or 0
    return {pk: tuple(c) for pk, c in counts.items()}


def _target(store: Store) -> Decimal | None:
    return store.plan.sla_target_percent if store.plan.sla_uptime else None


def store_uptime_month(store: Store, *, year: int, month: int) -> Uptime:
    up, down, maintenance = uptime_counts([store.pk], year=year, month=month)[store.pk]
    return Uptime(year, month, up, down, maintenance, settings.CARE_CHECK_INTERVAL_MINUTES, _target(store))


def sla_breaches(*, year: int, month: int) -> list[tuple[Store, Uptime]]:
    """Stores on sla_uptime plans whose uptime in the month fell below their plan's target, worst first:
    the list staff give credits from."""
    stores = list(Store.objects.filter(plan__sla_uptime=True).select_related("plan", "customer"))
    counts = uptime_counts([s.pk for s in stores], year=year, month=month)
    found = []
    for store in stores:
        uptime = Uptime(year, month, *counts[store.pk], settings.CARE_CHECK_INTERVAL_MINUTES, _target(store))
        if uptime.breached:
            found.append((store, uptime))
    return sorted(found, key=lambda pair: pair[1].percent)


# --- Staff and metrics ------------------------------------------------------------------------------------


def incidents_open() -> list[Incident]:
    return list(Incident.objects.filter(status=Incident.Status.OPEN).select_related("store").order_by("opened_at"))


def incidents_open_count() -> int:
    return Incident.objects.filter(status=Incident.Status.OPEN).count()


def incidents_open_by_kind() -> dict[str, int]:
    """Open incidents by kind: a store's `outage` (an availability check failed) or `warning` (the rest), or
    `platform` (a platform component's: provisioning.care.platform)."""
    rows = (
        Incident.objects.filter(status=Incident.Status.OPEN)
        .values("affects_uptime", platform=ExpressionWrapper(Q(store__isnull=True), output_field=BooleanField()))
        .annotate(count=Count("id"))
    )
    found: dict[str, int] = {}
    for row in rows:
        kind = "platform" if row["platform"] else "outage" if row["affects_uptime"] else "warning"
        found[kind] = found.get(kind, 0) + row["count"]
    return found


def platform_check_last(component: str) -> PlatformCheck | None:
    """The last recorded check of a platform component (e.g. `backups.repository`), or None."""
    return PlatformCheck.objects.filter(component=component).order_by("-checked_at", "-id").first()


def check_latency_recent(*, minutes: int = 15) -> dict[str, float]:
    """check name -> its average latency in milliseconds over the last `minutes`, across stores."""
    since = timezone.now() - timedelta(minutes=minutes)
    rows = (
        CheckResult.objects.filter(round__checked_at__gte=since)
        .values("check_name")
        .annotate(latency=Avg("latency_ms"))
    )
    return {row["check_name"]: float(row["latency"]) for row in rows}
