from collections.abc import Collection
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from accounts.models import User
from shophosting.core.emails import email_send
from shophosting.core.transactions import retrying_deadlocks
from shophosting.core.transitions import transition
from stores import crypto
from stores.domains import domain_normalize, platform_label_base, platform_name
from stores.exceptions import InvalidTransition, NoCapacity
from stores.models import Host, HostEvent, Store, StoreEvent, StoreName
from stores.selectors import host_disk_reserved, host_ports_used, host_reservation, stack_reservation, store_disk_usage

if TYPE_CHECKING:
    # Store.plan points up at billing's catalogue (stores/README.md, "Layers"); only the annotations name it.
    from billing.models import Plan

S = Store.Status

# to-status -> the statuses it may be reached from. store_transition is the only writer of Store.status.
ALLOWED_FROM: dict[str, set[str]] = {
    S.QUEUED: {S.AWAITING_PAYMENT},
    S.PROVISIONING: {S.QUEUED, S.FAILED},
    S.ACTIVE: {S.PROVISIONING, S.SUSPENDED, S.UNREACHABLE},
    S.UNREACHABLE: {S.ACTIVE},
    S.SUSPENDED: {S.ACTIVE},
    S.FAILED: {S.QUEUED, S.PROVISIONING},
    S.DELETING: {S.AWAITING_PAYMENT, S.ACTIVE, S.SUSPENDED, S.FAILED, S.POOLED},
    # pooled -> deleted: a warm pool stack handed to the store that claimed it (store_pool_hand_over).
    S.DELETED: {S.DELETING, S.POOLED},
}


@transaction.atomic
def store_transition(*, store_id: int, to: str, actor: User | None = None, note: str = "", message: str = "") -> Store:
    """Lock the row, check the edge, write the status and a StoreEvent. `message` is shown to the customer."""
    fields = {"status_message": message}
    if to == S.DELETED:
        fields["live_domain"] = None  # frees the domain for a new store
    store = transition(
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
    if to == S.DELETED:
        StoreName.objects.filter(store_id=store_id).delete()  # and its names, in the same transaction
    return store


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
    *,
    customer: User,
    plan: "Plan",
    domain: str = "",
    custom_domain: str = "",
    site_title: str = "",
    subscription=None,
    actor: User | None = None,
) -> Store:
    """A new store awaiting payment, with its platform name.

    `custom_domain` (what a merchant typed at signup) starts the proof flow: a pending name that holds nothing
    until its DNS proves control (stores.names.store_domain_add). `domain` is a custom name served at once
    without proof, as primary, for callers that vouch for it (a restore of the same customer's deleted store);
    it must be free among live stores. Store.domain is the primary name: that domain, else the platform name."""
    if domain:
        domain = domain_normalize(domain)
        if (
            Store.objects.select_for_update().filter(live_domain=domain).exists()
            or StoreName.objects.filter(served_name=domain).exists()
        ):
            raise ValidationError("This domain is already used by another store.")
    store = Store.objects.create(
        customer=customer,
        plan=plan,
        subscription=subscription,
        platform=plan.platform,
        domain=domain,
        live_domain=domain or None,
        site_title=site_title or customer.company or domain or custom_domain.strip() or "Store",
    )
    if domain:
        StoreName.objects.create(
            store=store, name=domain, served_name=domain, kind=StoreName.Kind.CUSTOM, is_primary=True
        )
    platform = _platform_name_give(store, primary=not domain)
    if not domain:
        store.domain = store.live_domain = platform.name
        store.save(update_fields=["domain", "live_domain"])
    StoreEvent.objects.create(store=store, old_status="", new_status=store.status, actor=actor, note="created")
    if custom_domain:
        from stores.names import store_domain_add  # stores.names builds on this module

        store_domain_add(store_id=store.pk, domain=custom_domain, actor=actor)
    return store


def _platform_name_give(store: Store, *, primary: bool) -> StoreName:
    """The store's platform name: its title as a DNS label, made unique with the store's id when taken or
    reserved; the unique served_name column is the backstop against a concurrent store taking it first."""
    base = platform_label_base(store.site_title)
    for label in (base, f"{base}-{store.pk}", f"store-{store.pk}"):
        try:
            name = platform_name(label)
        except ValidationError:
            continue  # a reserved label: the next candidate carries the store's id
        if (
            not StoreName.objects.filter(served_name=name).exists()
            and not Store.objects.filter(live_domain=name).exists()
        ):
            break
    return StoreName.objects.create(
        store=store, name=name, served_name=name, kind=StoreName.Kind.PLATFORM, is_primary=primary
    )


def placement_policy(platform: str) -> str:
    """ "spread" or "pack" for new stores of the platform: HOST_PLACEMENT_POLICY_BY_PLATFORM, else
    HOST_PLACEMENT_POLICY (both checked when the settings load)."""
    return settings.HOST_PLACEMENT_POLICY_BY_PLATFORM.get(platform, settings.HOST_PLACEMENT_POLICY)


# A warm pool claim on the same host may deadlock with a placement in the (host, port) index (the claim locks
# no host row): InnoDB rolls one back, and it runs again.
@retrying_deadlocks
def store_place(*, store_id: int, host_id: int | None = None, exclude_host_ids: Collection[int] = ()) -> Store:
    """Give the store a host with room and a free port (idempotent: a placed store keeps its place).

    Candidates are the hosts that accept new stores (`active`) and are not draining, with room for the
    stack's memory and CPU, the plan's disk allowance (where the host counts disk) and a free port in its
    range. Among them the platform's policy (`placement_policy`) picks: "spread", the most free memory first (ties: the
    older host); "pack", the hosts in order, so one fills before the next is used. A staging copy goes to its
    live store's host whatever its flags, or nowhere. `host_id`: that host only (a warm pool stack is built
    for one host). `exclude_host_ids`: never these (a store restored elsewhere while its host is away); a
    store placed on one of them is placed again, elsewhere.

    Race-free: the candidate host rows are locked while ports and capacity are counted, and the unique
    (host, port) constraint is the backstop.
    """
    store = Store.objects.select_for_update().select_related("plan").get(pk=store_id)
    if store.host_id and store.port and store.host_id not in exclude_host_ids:
        return store
    memory_mb, cpus = stack_reservation(store)
    disk_gb = store.plan.disk_allowance_gb
    hosts = Host.objects.select_for_update().filter(active=True, status=Host.Status.READY)
    if host_id is not None:
        hosts = hosts.filter(pk=host_id)
    hosts = hosts.exclude(pk__in=exclude_host_ids)
    if store.staging_of_id:  # a staging copy runs beside its live store, on the same engine
        hosts = Host.objects.select_for_update().filter(stores__pk=store.staging_of_id)
    candidates = []
    for host in hosts.order_by("pk"):
        used_memory, used_cpus = host_reservation(host=host, exclude_store_id=store.pk)
        if used_memory + memory_mb > host.memory_capacity_mb or used_cpus + cpus > host.cpu_capacity:
            continue
        if host.disk_capacity_gb is not None and host_disk_reserved(host=host, exclude_store_id=store.pk) + disk_gb > (
            host.disk_capacity_gb
        ):
            continue
        used_ports = set(host_ports_used(host=host))
        port = next((p for p in range(host.port_range_start, host.port_range_end + 1) if p not in used_ports), None)
        if port is None:
            continue
        candidates.append((host.memory_capacity_mb - used_memory, host, port))
    if candidates:
        if placement_policy(store.platform) == "spread":
            candidates.sort(key=lambda candidate: -candidate[0])  # stable: equal room keeps the host order
        _, store.host, store.port = candidates[0]
        store.save(update_fields=["host", "port", "updated_at"])
        return store
    if store.staging_of_id:
        raise NoCapacity(
            f"the host of store {store.staging_of_id} has no room ({memory_mb} MB, {cpus} CPU and a free port) "
            f"for its staging copy {store.pk}"
        )
    raise NoCapacity(
        f"no host accepting new stores has {memory_mb} MB, {cpus} CPU, {disk_gb} GB of disk and a free port "
        f"for store {store.pk}"
    )


@transaction.atomic
def store_pooled_create(*, plan: "Plan", key: str) -> Store:
    """A store row for a warm pool stack: no customer, no names (nothing routes to it), a placeholder domain
    under .invalid that no DNS answers, in status pooled (provisioning/README.md, "The warm pool")."""
    domain = f"{key}.pool.invalid"
    store = Store.objects.create(
        customer=None, plan=plan, platform=plan.platform, domain=domain, site_title="Pool", status=S.POOLED
    )
    StoreEvent.objects.create(store=store, old_status="", new_status=S.POOLED, note="created for the warm pool")
    return store


@transaction.atomic
def store_pool_hand_over(*, pool_store_id: int, store_id: int) -> Store:
    """The paid store takes the pool stack's host, port and Docker objects (by their key); the pool stack's row
    becomes deleted with a note naming the store. The caller holds the pool stack's row lock (its claim)."""
    pool = Store.objects.select_for_update().get(pk=pool_store_id)
    store = Store.objects.select_for_update().get(pk=store_id)
    if pool.status != S.POOLED or store.host_id:
        raise InvalidTransition(f"store {store_id} cannot take pool stack {pool_store_id} ({pool.status})")
    host_id, port, key = pool.host_id, pool.port, pool.object_key
    # The port first leaves the pool row: (host, port) is unique.
    Store.objects.filter(pk=pool.pk).update(host=None, port=None)
    Store.objects.filter(pk=store.pk).update(host_id=host_id, port=port, stack_key=key)
    store_transition(store_id=pool.pk, to=S.DELETED, note=f"claimed by store {store.pk} ({store.domain})")
    return Store.objects.select_related("host", "plan").get(pk=store.pk)


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


HOST_ALLOWED_FROM = {
    Host.Status.DRAINING: {Host.Status.READY, Host.Status.MAINTENANCE},
    Host.Status.READY: {Host.Status.DRAINING, Host.Status.MAINTENANCE},
    # Its stores are moved off (provisioning.moves.host_maintenance_start starts the evacuation).
    Host.Status.MAINTENANCE: {Host.Status.READY, Host.Status.DRAINING},
}


def host_transition(*, host_id: int, to: str, actor: User | None = None, note: str = "") -> Host:
    """The only code that writes Host.status: ready ⇄ draining ⇄ maintenance (neither gets a new store; a
    draining host's stores stay, a host in maintenance has them moved off), under the row's lock, with a
    HostEvent."""
    return transition(
        Host,
        host_id,
        to,
        allowed_from=HOST_ALLOWED_FROM,
        event_model=HostEvent,
        event_link="host",
        actor=actor,
        note=note,
        same_is_noop=True,
    )


HOST_CHECK_FIELDS = (
    "checked_at",
    "engine_version",
    "storage_driver",
    "cgroup_limits",
    "memory_total_mb",
    "cpus_total",
    "disk_free_bytes",
    "disk_total_bytes",
    "check_report",
)


@transaction.atomic
def host_save(*, host: Host, tls: dict[str, str] | None, check: dict, ssh: dict[str, str] | None = None) -> Host:
    """Save a host the admin filled in, with what its registration check found (`check`: the
    HOST_CHECK_FIELDS) and its TLS material encrypted (`tls`: {"ca", "cert", "key"} PEM text; None keeps
    what the host has, {} clears it), likewise an ssh:// engine's key and pinned host keys (`ssh`: {"key",
    "known_hosts"}). The caller ran the check first: a host is never saved half-checked."""
    if tls is not None:
        host.tls_encrypted = crypto.encrypt(tls) if tls else ""
    if ssh is not None:
        host.ssh_encrypted = crypto.encrypt(ssh) if ssh else ""
    for name in HOST_CHECK_FIELDS:
        setattr(host, name, check[name])
    host.full_clean()
    host.save()
    return host


@transaction.atomic
def host_check_record(*, host_id: int, check: dict) -> Host:
    """Record a check run again on a saved host (the admin's "Check again")."""
    host = Host.objects.select_for_update().get(pk=host_id)
    for name in HOST_CHECK_FIELDS:
        setattr(host, name, check[name])
    host.check_error = ""
    host.save(update_fields=[*HOST_CHECK_FIELDS, "check_error"])
    return host


def host_check_failure_record(*, host_id: int, error: str, at) -> None:
    """Record that a check run again on a saved host failed; what the last passing check found is kept."""
    Host.objects.filter(pk=host_id).update(check_error=f"{at:%Y-%m-%d %H:%M} UTC: {error}"[:5000])


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
def store_disk_record(*, store_id: int, used_bytes: int, measured_at, staging_bytes: int = 0) -> Store:
    """Record what the store's volumes take, `staging_bytes` of its staging copy's included in `used_bytes`
    (a copy counts against its live store's allowance). When it crosses 80 % of the plan's allowance, or the
    allowance itself, the merchant is mailed once (after the commit); falling back below re-arms the warning.
    A staging copy's own record is for staff only: its use is told on its live store's."""
    store = Store.objects.select_for_update().select_related("plan", "customer").get(pk=store_id)
    store.disk_bytes = used_bytes
    store.disk_staging_bytes = staging_bytes
    store.disk_measured_at = measured_at
    usage = store_disk_usage(store)
    crossed = usage.alert_percent > store.disk_alert_percent and not store.staging_of_id
    store.disk_alert_percent = usage.alert_percent
    store.save(update_fields=["disk_bytes", "disk_staging_bytes", "disk_measured_at", "disk_alert_percent"])
    if crossed:
        context = {"store": store, "usage": usage, "dashboard_path": reverse("stores:detail", args=[store.pk])}
        transaction.on_commit(lambda: email_send(template="store_disk", to=[store.customer.email], context=context))
    return store


@transaction.atomic
def store_names_ensure(*, store_id: int) -> list[StoreName]:
    """Give a store made before platform names its platform name, and its signup domain as its custom primary
    name (it was served without proof then). Returns the names the vhost serves, primary first."""
    store = Store.objects.select_for_update().get(pk=store_id)
    names = store.names.all()
    if (
        store.status != S.DELETED
        and not names.exists()
        and store.domain
        and not StoreName.objects.filter(served_name=store.domain).exists()
    ):
        StoreName.objects.create(
            store=store, name=store.domain, served_name=store.domain, kind=StoreName.Kind.CUSTOM, is_primary=True
        )
    if store.status != S.DELETED and not names.filter(kind=StoreName.Kind.PLATFORM).exists():
        _platform_name_give(store, primary=not names.filter(is_primary=True).exists())
    return list(names.filter(status__in=StoreName.SERVED))


def store_names_tls_result(*, store_id: int, issued: list[str], failed: dict[str, str], max_failures: int) -> list[str]:
    """Record what the last certificate order said of each name: issued names start afresh, failed ones count
    a failure; at `max_failures` in a row a custom name becomes UNREACHABLE (served on HTTP, left off the certificate,
    no more retries for it) with a message for the store page and an event. Returns the names that just did."""
    given_up = []
    with transaction.atomic():
        store = Store.objects.select_for_update().get(pk=store_id)
        StoreName.objects.filter(store=store, name__in=issued).update(
            status=StoreName.Status.ACTIVE, tls_failures=0, status_message=""
        )
        for row in StoreName.objects.select_for_update().filter(store=store, name__in=list(failed)):
            row.tls_failures += 1
            row.status_message = failed[row.name][:2000]
            # A platform name is never given up: its DNS is the platform's, so a failure there is an outage
            # to fix (and to keep retrying), not a merchant's domain that moved away.
            if (
                row.tls_failures >= max_failures
                and row.status == StoreName.Status.ACTIVE
                and row.kind == StoreName.Kind.CUSTOM
            ):
                row.status = StoreName.Status.UNREACHABLE
                row.status_message = (
                    f"{row.name} does not point at us: its certificate failed {row.tls_failures} times in a row, "
                    f"so it is no longer renewed. It still answers on HTTP. Last error: {failed[row.name][:500]}"
                )
                given_up.append(row.name)
            row.save(update_fields=["tls_failures", "status", "status_message", "updated_at"])
        for name in given_up:
            StoreEvent.objects.create(
                store=store,
                old_status=store.status,
                new_status=store.status,
                note=f"name {name}: unreachable, left off the certificate",
                message=f"{name} stopped pointing at us: HTTPS for it is off until its DNS is fixed.",
            )
    return given_up


@transaction.atomic
def store_hsts_set(*, store_id: int, enabled: bool, actor: User | None = None) -> Store:
    """Turn HSTS on or off for the store's HTTPS vhost (the caller rewrites the vhost). Recorded as an event."""
    store = Store.objects.select_for_update().get(pk=store_id)
    if store.hsts_enabled != enabled:
        store.hsts_enabled = enabled
        store.save(update_fields=["hsts_enabled", "updated_at"])
        StoreEvent.objects.create(
            store=store,
            old_status=store.status,
            new_status=store.status,
            actor=actor,
            note=f"HSTS {'on' if enabled else 'off'}",
            message=f"HSTS turned {'on' if enabled else 'off'}.",
        )
    return store
