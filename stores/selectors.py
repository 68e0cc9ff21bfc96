from dataclasses import dataclass
from decimal import Decimal

from stores.models import Host, Store


@dataclass(frozen=True)
class HostUsage:
    host: Host
    memory_mb: int
    cpus: Decimal
    ports: list[int]


def host_usage_list() -> list[HostUsage]:
    from stores.services import HOLDS_RESOURCES, stack_reservation

    usage = []
    for host in Host.objects.order_by("name"):
        holders = list(Store.objects.filter(host=host, status__in=HOLDS_RESOURCES).select_related("plan"))
        reservations = [stack_reservation(store) for store in holders]
        usage.append(
            HostUsage(
                host=host,
                memory_mb=sum(memory for memory, _ in reservations),
                cpus=sum((cpus for _, cpus in reservations), Decimal(0)),
                ports=sorted(Store.objects.filter(host=host, port__isnull=False).values_list("port", flat=True)),
            )
        )
    return usage


def store_list_for_customer(customer):
    return Store.objects.filter(customer=customer).exclude(status=Store.Status.DELETED).select_related("plan")
