from dataclasses import dataclass
from decimal import Decimal

from stores.models import Host, Store


@dataclass(frozen=True)
class HostUsage:
    host: Host
    memory_mb: int
    cpus: Decimal
    ports: list[int]


S = Store.Status
# Statuses in which a store holds its host reservation and port.
HOLDS_RESOURCES = {S.QUEUED, S.PROVISIONING, S.ACTIVE, S.SUSPENDED, S.FAILED, S.DELETING}


def stack_reservation(store: Store) -> tuple[int, Decimal]:
    """Memory (MB) and CPU that the store's whole stack reserves on its host."""
    from provisioning.stacks import stack_for

    services = stack_for(store).services(include_optional=store.phpmyadmin_enabled)
    return sum(s.memory_mb for s in services), sum((Decimal(str(s.cpus)) for s in services), Decimal(0))


def host_reservation(*, host: Host, exclude_store_id: int | None = None) -> tuple[int, Decimal]:
    """Memory (MB) and CPU reserved on `host` by the stores that hold resources there."""
    holders = Store.objects.filter(host=host, status__in=HOLDS_RESOURCES).select_related("plan")
    if exclude_store_id is not None:
        holders = holders.exclude(pk=exclude_store_id)
    reservations = [stack_reservation(store) for store in holders]
    return sum(memory for memory, _ in reservations), sum((cpus for _, cpus in reservations), Decimal(0))


def host_ports_used(*, host: Host) -> list[int]:
    return sorted(Store.objects.filter(host=host, port__isnull=False).values_list("port", flat=True))


def host_usage_list() -> list[HostUsage]:
    usage = []
    for host in Host.objects.order_by("name"):
        memory_mb, cpus = host_reservation(host=host)
        usage.append(HostUsage(host=host, memory_mb=memory_mb, cpus=cpus, ports=host_ports_used(host=host)))
    return usage


def store_list_for_customer(customer):
    return Store.objects.filter(customer=customer).exclude(status=Store.Status.DELETED).select_related("plan")
