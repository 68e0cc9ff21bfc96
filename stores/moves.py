"""Where a store is while it moves to another host (provisioning/moves.py runs the move).

A move holds two places at once: the store's own (`host`, `port`) and the second one (`move_host`,
`move_port`). Until the switch the second one is the target's, reserved here so placement gives its port and
room to nobody else; the switch swaps them, so the store runs on the target and the second place is the
source's until its old stack is removed; then it is released. Placement counts both (stores.selectors).
"""

from django.db import transaction

from stores.exceptions import InvalidTransition, NoCapacity
from stores.models import Host, Store
from stores.selectors import host_disk_reserved, host_ports_used, host_reservation, stack_reservation
from stores.services import placement_policy


class MoveRefused(InvalidTransition):
    """A move that cannot start, with the reason in words staff read as is."""


def _room(host: Host, store: Store) -> tuple[int | None, str]:
    """(a free port, "") when `host` has room for the store's stack, else (None, what it lacks)."""
    memory_mb, cpus = stack_reservation(store)
    used_memory, used_cpus = host_reservation(host=host, exclude_store_id=store.pk)
    if used_memory + memory_mb > host.memory_capacity_mb:
        return None, f"{host.name} has {host.memory_capacity_mb - used_memory} MB free, the store needs {memory_mb} MB"
    if used_cpus + cpus > host.cpu_capacity:
        return None, f"{host.name} has {host.cpu_capacity - used_cpus} CPU free, the store needs {cpus}"
    disk_gb = store.plan.disk_allowance_gb
    if host.disk_capacity_gb is not None and host_disk_reserved(host=host, exclude_store_id=store.pk) + disk_gb > (
        host.disk_capacity_gb
    ):
        return None, f"{host.name} has no room for the plan's {disk_gb} GB of disk"
    used_ports = set(host_ports_used(host=host))
    port = next((p for p in range(host.port_range_start, host.port_range_end + 1) if p not in used_ports), None)
    if port is None:
        return None, f"{host.name} has no free port in {host.port_range_start}-{host.port_range_end}"
    return port, ""


def host_room(host: Host, store: Store) -> int | None:
    """The memory (MB) `host` has free beyond the store's stack when it could take the store, else None."""
    port, _ = _room(host, store)
    if port is None:
        return None
    used_memory, _ = host_reservation(host=host, exclude_store_id=store.pk)
    return host.memory_capacity_mb - used_memory - stack_reservation(store)[0]


@transaction.atomic
def store_move_reserve(*, store_id: int, host_id: int | None = None) -> Store:
    """Reserve the target of a move: `host_id`, or by the placement policy among the hosts that take new
    stores other than the store's own; a port and the stack's room there are held in `move_host`/`move_port`.
    Refuses (MoveRefused, nothing written) a store that is not placed, already moving, a staging copy or one
    with a staging copy, the store's own host or engine, a host that takes no new stores, and a host without
    room (NoCapacity). The caller holds the store for the operation (its job)."""
    store = Store.objects.select_for_update().select_related("host", "plan").get(pk=store_id)
    if store.host_id is None or store.port is None:
        raise MoveRefused(f"{store.domain} is not placed on any host, so there is nothing to move.")
    if store.move_host_id is not None:
        raise MoveRefused(f"{store.domain} is moving already (a place on {store.move_host.name} is held for it).")
    if store.staging_of_id:
        raise MoveRefused(
            f"{store.domain} is a staging copy: it runs on its live store's host. Move the live store instead."
        )
    copy = store.staging_copies.exclude(status=Store.Status.DELETED).first()
    if copy is not None:
        raise MoveRefused(
            f"{store.domain} has a staging copy ({copy.domain}), which must run on the same host and is not moved "
            "with it. Delete the staging copy first; the merchant can make a new one after the move."
        )
    if host_id is not None:
        host = Host.objects.select_for_update().filter(pk=host_id).first()
        if host is None:
            raise MoveRefused(f"There is no host with the id {host_id}.")
        if host.pk == store.host_id:
            raise MoveRefused(f"{store.domain} runs on {host.name} already: choose another host.")
        if host.docker_url == store.host.docker_url:
            raise MoveRefused(f"{host.name} is the same Docker engine as {store.host.name} ({host.docker_url}).")
        if not host.accepts_new_stores:
            why = "is not accepting new stores" if not host.active else f"is {host.get_status_display().lower()}"
            raise MoveRefused(f"{host.name} {why}: a store can only move to a ready host that takes new stores.")
        port, lacking = _room(host, store)
        if port is None:
            raise NoCapacity(f"{store.domain} cannot move to {host.name}: {lacking}.")
    else:
        candidates = []
        hosts = Host.objects.select_for_update().filter(active=True, status=Host.Status.READY).exclude(pk=store.host_id)
        for candidate in hosts.exclude(docker_url=store.host.docker_url).order_by("pk"):
            found, _ = _room(candidate, store)
            if found is not None:
                used_memory, _ = host_reservation(host=candidate, exclude_store_id=store.pk)
                candidates.append((candidate.memory_capacity_mb - used_memory, candidate, found))
        if not candidates:
            raise NoCapacity(f"No other host that takes new stores has room for {store.domain}.")
        if placement_policy(store.platform) == "spread":
            candidates.sort(key=lambda candidate: -candidate[0])
        _, host, port = candidates[0]
    Store.objects.filter(pk=store.pk).update(move_host=host, move_port=port)
    return Store.objects.select_related("host", "move_host", "plan").get(pk=store.pk)


@transaction.atomic
def store_move_switch(*, store_id: int, host_id: int, port: int) -> Store:
    """The store runs on the move's target from now on: its place becomes (`host_id`, `port`), which must be
    the one reserved, and the source's place stays held (`move_host`) until its old stack is removed."""
    store = Store.objects.select_for_update().get(pk=store_id)
    if (store.host_id, store.port) == (host_id, port):
        return store  # switched already (a retried step)
    if (store.move_host_id, store.move_port) != (host_id, port):
        raise InvalidTransition(f"store {store.pk} holds no place on host {host_id} port {port} to switch to")
    source_host_id, source_port = store.host_id, store.port
    Store.objects.filter(pk=store.pk).update(
        host_id=host_id, port=port, move_host_id=source_host_id, move_port=source_port
    )
    return Store.objects.select_related("host", "move_host", "plan").get(pk=store.pk)


@transaction.atomic
def store_move_release(*, store_id: int) -> None:
    """Free the move's second place: the target's after a move that failed before the switch, the source's
    once its old stack is removed."""
    Store.objects.filter(pk=store_id).update(move_host=None, move_port=None)
