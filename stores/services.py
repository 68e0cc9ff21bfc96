from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import transaction
from django.urls import reverse

from accounts.models import User
from shophosting.core.emails import email_send
from shophosting.core.transitions import transition
from stores import crypto
from stores.domains import domain_normalize
from stores.exceptions import InvalidTransition, NoCapacity
from stores.models import Host, Store, StoreEvent
from stores.selectors import host_ports_used, host_reservation, stack_reservation, store_disk_usage

if TYPE_CHECKING:
    # Store.plan points up at billing's catalogue (stores/README.md, "Layers"); only the annotations name it.
    from billing.models import Plan

S = Store.Status

# to-status -> the statuses it may be reached from. store_transition is the only writer of Store.status.
ALLOWED_FROM: dict[str, set[str]] = {
    S.QUEUED: {S.AWAITING_PAYMENT},
    S.PROVISIONING: {S.QUEUED, S.FAILED},
    S.ACTIVE: {S.PROVISIONING, S.SUSPENDED},
    S.SUSPENDED: {S.ACTIVE},
    S.FAILED: {S.QUEUED, S.PROVISIONING},
    S.DELETING: {S.AWAITING_PAYMENT, S.ACTIVE, S.SUSPENDED, S.FAILED},
    S.DELETED: {S.DELETING},
}


def store_transition(*, store_id: int, to: str, actor: User | None = None, note: str = "", message: str = "") -> Store:
    """Lock the row, check the edge, write the status and a StoreEvent. `message` is shown to the customer."""
    fields = {"status_message": message}
    if to == S.DELETED:
        fields["live_domain"] = None  # frees the domain for a new store
    return transition(
        Store,
        store_id,
        to,
        allowed_from=ALLOWED_FROM,
        event_model=StoreEvent,
        event_link="store",
        actor=actor,
        note=note,
        event_fields={"message": message},
        **fields,
    )


@transaction.atomic
def store_event_record(*, store_id: int, note: str, message: str = "", actor: User | None = None) -> StoreEvent:
    """A notable fact about the store with its status unchanged (an update of its software): `note` for staff,
    `message` in plain words for the merchant, whose store page lists the events that have one."""
    store = Store.objects.select_for_update().get(pk=store_id)
    return StoreEvent.objects.create(
        store=store, old_status=store.status, new_status=store.status, actor=actor, note=note[:5000], message=message
    )


@transaction.atomic
def store_create(
    *, customer: User, plan: "Plan", domain: str, site_title: str = "", subscription=None, actor: User | None = None
) -> Store:
    """A new store awaiting payment. The domain is validated and must be free among live stores."""
    from django.core.exceptions import ValidationError

    domain = domain_normalize(domain)
    if Store.objects.select_for_update().filter(live_domain=domain).exists():
        raise ValidationError("This domain is already used by another store.")
    store = Store.objects.create(
        customer=customer,
        plan=plan,
        subscription=subscription,
        platform=plan.platform,
        domain=domain,
        live_domain=domain,
        site_title=site_title or customer.company or domain,
    )
    StoreEvent.objects.create(store=store, old_status="", new_status=store.status, actor=actor, note="created")
    return store


@transaction.atomic
def store_place(*, store_id: int) -> Store:
    """Give the store a host with capacity and a free port (idempotent: a placed store keeps its place).

    Race-free: the candidate host rows are locked while ports and capacity are counted, and the unique
    (host, port) constraint is the backstop.
    """
    store = Store.objects.select_for_update().select_related("plan").get(pk=store_id)
    if store.host_id and store.port:
        return store
    memory_mb, cpus = stack_reservation(store)
    for host in Host.objects.select_for_update().filter(active=True).order_by("pk"):
        used_memory, used_cpus = host_reservation(host=host, exclude_store_id=store.pk)
        if used_memory + memory_mb > host.memory_capacity_mb or used_cpus + cpus > host.cpu_capacity:
            continue
        used_ports = set(host_ports_used(host=host))
        port = next((p for p in range(host.port_range_start, host.port_range_end + 1) if p not in used_ports), None)
        if port is None:
            continue
        store.host, store.port = host, port
        store.save(update_fields=["host", "port", "updated_at"])
        return store
    raise NoCapacity(f"no active host has {memory_mb} MB, {cpus} CPU and a free port for store {store.pk}")


@transaction.atomic
def store_release(*, store_id: int) -> None:
    """Free the store's port (after teardown), so the port can be reused."""
    Store.objects.filter(pk=store_id).update(host=None, port=None)


def store_credentials_save(*, store_id: int, credentials: dict[str, str]) -> None:
    """Merge and encrypt credentials; they are never logged."""
    with transaction.atomic():
        store = Store.objects.select_for_update().get(pk=store_id)
        merged = {**crypto.decrypt(store.credentials_encrypted), **credentials}
        store.credentials_encrypted = crypto.encrypt(merged)
        store.save(update_fields=["credentials_encrypted", "updated_at"])


def store_credentials(store: Store) -> dict[str, str]:
    return crypto.decrypt(store.credentials_encrypted)


def host_local_ensure(*, docker_url: str) -> Host:
    host, _ = Host.objects.get_or_create(
        name="local", defaults={"docker_url": docker_url, "memory_capacity_mb": 20 * 1024, "cpu_capacity": Decimal(32)}
    )
    return host


@transaction.atomic
def store_plan_change(*, store_id: int, plan: "Plan", actor: User | None = None) -> Store:
    """Move a store to another plan of its platform; the caller applies the new limits to the containers."""
    store = Store.objects.select_for_update().get(pk=store_id)
    if plan.platform != store.platform:
        raise InvalidTransition(f"store {store.pk} runs {store.platform}; plan {plan.slug} is for {plan.platform}")
    if store.plan_id != plan.pk:
        old_plan = store.plan
        store.plan = plan
        store.save(update_fields=["plan", "updated_at"])
        StoreEvent.objects.create(
            store=store,
            old_status=store.status,
            new_status=store.status,
            actor=actor,
            note=f"plan changed from {old_plan.slug} to {plan.slug}",
        )
    return store


@transaction.atomic
def store_disk_record(*, store_id: int, used_bytes: int, measured_at) -> Store:
    """Record what the store's volumes take. When it crosses 80 % of the plan's allowance, or the allowance
    itself, the merchant is mailed once (after the commit); falling back below re-arms the warning."""
    store = Store.objects.select_for_update().select_related("plan", "customer").get(pk=store_id)
    store.disk_bytes = used_bytes
    store.disk_measured_at = measured_at
    usage = store_disk_usage(store)
    crossed = usage.alert_percent > store.disk_alert_percent
    store.disk_alert_percent = usage.alert_percent
    store.save(update_fields=["disk_bytes", "disk_measured_at", "disk_alert_percent"])
    if crossed:
        context = {"store": store, "usage": usage, "dashboard_path": reverse("stores:detail", args=[store.pk])}
        transaction.on_commit(lambda: email_send(template="store_disk", to=[store.customer.email], context=context))
    return store
