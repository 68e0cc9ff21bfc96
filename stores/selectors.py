from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db import models

from stores.models import Host, Store, StoreEvent, StoreName, StoreUsageSample


@dataclass(frozen=True)
class HostUsage:
    host: Host
    memory_mb: int
    cpus: Decimal
    ports: list[int]
    disk_gb: int = 0  # the plans' disk allowances of the stores holding resources there
    stores: int = 0  # the stores holding resources there (warm pool stacks included)

    @property
    def memory_free_mb(self) -> int:
        return self.host.memory_capacity_mb - self.memory_mb

    @property
    def cpus_free(self) -> Decimal:
        return self.host.cpu_capacity - self.cpus

    @property
    def disk_free_gb(self) -> int | None:
        return None if self.host.disk_capacity_gb is None else self.host.disk_capacity_gb - self.disk_gb


S = Store.Status
# Statuses in which a store holds its host reservation and port.
# A warm pool stack (pooled) holds its host's memory, CPU and a port like a store: its containers run.
HOLDS_RESOURCES = {S.QUEUED, S.PROVISIONING, S.ACTIVE, S.SUSPENDED, S.FAILED, S.DELETING, S.UNREACHABLE, S.POOLED}


# store -> the memory (MB) and CPUs its whole stack reserves on its host. Provisioning owns the stacks and
# defines it from ProvisioningConfig.ready(), so placement counts capacity without stores importing provisioning.
StackReservation = Callable[[Store], tuple[int, Decimal]]
_stack_reservation: StackReservation | None = None


def stack_reservation_define(reservation: StackReservation) -> None:
    global _stack_reservation
    _stack_reservation = reservation


def stack_reservation(store: Store) -> tuple[int, Decimal]:
    """Memory (MB) and CPU that the store's whole stack reserves on its host."""
    if _stack_reservation is None:
        raise RuntimeError("no stack reservation is defined: provisioning is not installed or not ready")
    return _stack_reservation(store)


def _holders(host: Host):
    """The stores holding resources on `host`: those placed there, and those moving to or from it (a move
    runs both stacks until the old one is removed: Store.move_host)."""
    return Store.objects.filter(models.Q(host=host) | models.Q(move_host=host), status__in=HOLDS_RESOURCES)


def host_reservation(*, host: Host, exclude_store_id: int | None = None) -> tuple[int, Decimal]:
    """Memory (MB) and CPU reserved on `host` by the stores that hold resources there."""
    holders = _holders(host).select_related("plan")
    if exclude_store_id is not None:
        holders = holders.exclude(pk=exclude_store_id)
    reservations = [stack_reservation(store) for store in holders]
    return sum(memory for memory, _ in reservations), sum((cpus for _, cpus in reservations), Decimal(0))


def host_disk_reserved(*, host: Host, exclude_store_id: int | None = None) -> int:
    """GB of disk the plans of the stores holding resources on `host` allow them."""
    holders = _holders(host)
    if exclude_store_id is not None:
        holders = holders.exclude(pk=exclude_store_id)
    return holders.aggregate(total=models.Sum("plan__disk_allowance_gb"))["total"] or 0


def host_ports_used(*, host: Host) -> list[int]:
    """The ports of `host` that stores hold: their own, and those reserved by a move to or from it."""
    ports = set(Store.objects.filter(host=host, port__isnull=False).values_list("port", flat=True))
    ports |= set(Store.objects.filter(move_host=host, move_port__isnull=False).values_list("move_port", flat=True))
    return sorted(ports)


def host_usage_list() -> list[HostUsage]:
    """Every host with what its stores reserve (memory, CPUs, disk), their count and the ports in use: two
    queries however many hosts and stores (the staff index and `manage.py hosts` read it)."""
    hosts = list(Host.objects.order_by("name"))
    holders: dict[int, list[Store]] = {host.pk: [] for host in hosts}
    ports: dict[int, list[int]] = {host.pk: [] for host in hosts}
    rows = (
        Store.objects.filter(host__isnull=False)
        .filter(models.Q(status__in=HOLDS_RESOURCES) | models.Q(port__isnull=False))
        .select_related("plan")
    )
    for store in rows:
        if store.port is not None:
            ports[store.host_id].append(store.port)
        if store.status in HOLDS_RESOURCES:
            holders[store.host_id].append(store)
    usage = []
    for host in hosts:
        reservations = [stack_reservation(store) for store in holders[host.pk]]
        usage.append(
            HostUsage(
                host=host,
                memory_mb=sum(memory for memory, _ in reservations),
                cpus=sum((cpus for _, cpus in reservations), Decimal(0)),
                ports=sorted(ports[host.pk]),
                disk_gb=sum(store.plan.disk_allowance_gb or 0 for store in holders[host.pk]),
                stores=len(holders[host.pk]),
            )
        )
    return usage


def store_list_for_customer(customer):
    """The customer's stores (all but deleted ones) with their plan, in one query. A staging copy is not one
    of them: it shows on its live store's page only."""
    return (
        Store.objects.filter(customer=customer, staging_of__isnull=True)
        .exclude(status=Store.Status.DELETED)
        .select_related("plan")
    )


def store_usage_chart(store: Store, *, now=None, width: int = 600, height: int = 120) -> dict | None:
    """The last 24 h of memory and CPU samples as SVG polyline points (x: time, y: share of the limit)."""
    from datetime import timedelta

    from django.utils import timezone

    now = now or timezone.now()
    start = now - timedelta(hours=24)
    samples = list(StoreUsageSample.objects.filter(store=store, taken_at__gte=start).order_by("taken_at"))
    if not samples:
        return None
    span = (now - start).total_seconds()

    def x(sample) -> float:
        return round((sample.taken_at - start).total_seconds() / span * width, 1)

    def y(share: float) -> float:
        return round(height - min(max(share, 0.0), 1.0) * height, 1)

    cpu_limit = float(store.cpus) * 100 or 100
    latest = samples[-1]
    return {
        "width": width,
        "height": height,
        "memory_points": " ".join(f"{x(s)},{y(s.memory_bytes / (s.memory_limit_bytes or 1))}" for s in samples),
        "cpu_points": " ".join(f"{x(s)},{y(s.cpu_percent / cpu_limit)}" for s in samples),
        "memory_mb": latest.memory_bytes >> 20,
        "memory_limit_mb": latest.memory_limit_bytes >> 20,
        "cpu_percent": round(latest.cpu_percent, 1),
        "cpu_limit_percent": round(cpu_limit),
        "samples": len(samples),
    }


GB = 1024**3
DISK_WARNING_PERCENT = 80  # the merchant is told at this share of the plan's allowance, and again when over it


@dataclass(frozen=True)
class DiskUsage:
    used_bytes: int
    allowance_bytes: int
    measured_at: object  # an aware datetime
    staging_bytes: int = 0  # of used_bytes, the staging copy's

    @property
    def staging_gb(self) -> str:
        return f"{self.staging_bytes / GB:.2f}"

    @property
    def percent(self) -> int:
        return round(100 * self.used_bytes / self.allowance_bytes)

    @property
    def state(self) -> str:
        """ "ok", "warning" (at 80 % of the allowance or more) or "over" (more than the allowance)."""
        if self.used_bytes > self.allowance_bytes:
            return "over"
        return "warning" if self.percent >= DISK_WARNING_PERCENT else "ok"

    @property
    def alert_percent(self) -> int:
        """The threshold crossed (0, 80 or 100): what the merchant is told about once."""
        return {"ok": 0, "warning": DISK_WARNING_PERCENT, "over": 100}[self.state]

    @property
    def used_gb(self) -> str:
        return f"{self.used_bytes / GB:.2f}"


def store_disk_usage(store: Store) -> DiskUsage | None:
    """The store's disk use (its staging copy's included) against its plan's allowance, as last measured; None
    before the first measurement."""
    if store.disk_bytes is None:
        return None
    return DiskUsage(
        store.disk_bytes, store.plan.disk_allowance_gb * GB, store.disk_measured_at, store.disk_staging_bytes
    )


def store_of_customer_or_404(customer, store_id: int) -> Store:
    """The customer's store; another customer's id is a 404, the same as a missing one: ids reveal nothing."""
    from django.shortcuts import get_object_or_404

    return get_object_or_404(
        Store.objects.select_related("plan").exclude(status=Store.Status.DELETED), pk=store_id, customer=customer
    )


def store_history(store: Store, *, limit: int = 20) -> list[StoreEvent]:
    """What the merchant reads in the store's history: the events written for them, newest first."""
    return list(store.events.exclude(message="").order_by("-created_at", "-id")[:limit])


def store_names_served(store: Store) -> list[StoreName]:
    """The names the store's vhost serves (active and unreachable ones), primary first, then custom ones."""
    return list(store.names.filter(status__in=StoreName.SERVED))


def store_primary_name(store: Store) -> str:
    """The name the application's own URLs use: the primary StoreName (the signup domain until primary
    switching exists), or the signup domain of a store that has no names yet."""
    primary = store.names.filter(is_primary=True).values_list("name", flat=True).first()
    return primary or store.domain


def store_platform_name(store: Store) -> StoreName | None:
    """The store's name under PLATFORM_DOMAIN, which works before any DNS of the merchant's own."""
    return store.names.filter(kind=StoreName.Kind.PLATFORM).first()


def store_id_by_reference(reference: str) -> int | None:
    """The live store a member of staff names by number ("12" or "#12"), signup domain or any of its names;
    None when nothing matches. For quick actions that take a store typed by hand."""
    reference = reference.strip().lower().removeprefix("#")
    if not reference:
        return None
    if reference.isdigit():
        return int(reference)
    live = Store.objects.exclude(status=Store.Status.DELETED)
    found = live.filter(domain=reference).values_list("pk", flat=True).first()
    if found is None:  # a name it serves (a pending one may be typed by several accounts: it names nobody)
        found = live.filter(names__served_name=reference).values_list("pk", flat=True).first()
    return found
