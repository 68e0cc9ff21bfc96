"""Stores of a host that went away, placed on another host, and what they left behind on it.

While a host's engine does not answer (its platform incident `docker.host-<id>` is open, see hosts.py), its
stores are unreachable. Staff may restore them elsewhere from their backups (backups/recovery.py): each is
placed on another host (`store_rehome`), and what it left on the lost host is recorded as a `StaleStack`.
When that engine answers again, its heartbeat removes those objects first (`stale_stacks_remove`): the old
copy of a store that lives elsewhere never runs again, is never served and never holds its old port, and the
heartbeat never brings such a store "back" there (it moves only stores whose host is still that host).
"""

import logging

from django.db import transaction
from django.utils import timezone

from provisioning import docker_client
from provisioning.care.models import Incident
from provisioning.exceptions import ProvisioningError
from provisioning.models import StaleStack
from stores.models import Host, Store
from stores.services import store_event_record, store_place

logger = logging.getLogger(__name__)
COMPONENT_PREFIX = "docker.host-"


def host_component(host_id: int) -> str:
    """The platform check component of a host's engine (recorded every minute by the platform round)."""
    return f"{COMPONENT_PREFIX}{host_id}"


def host_is_away(host_id: int) -> bool:
    """The host's engine has not answered CARE_INCIDENT_THRESHOLD looks in a row: its incident is open."""
    return Incident.objects.filter(open_for_component=host_component(host_id)).exists()


def hosts_away_ids() -> set[int]:
    components = Incident.objects.filter(open_for_component__startswith=COMPONENT_PREFIX).values_list(
        "open_for_component", flat=True
    )
    return {int(component.removeprefix(COMPONENT_PREFIX)) for component in components}


def store_place_new(*, store_id: int) -> Store:
    """Place a store that is being built (provision, retry, staging copy) on a host that answers: a host
    whose engine incident is open is left out like a draining one, so a paying customer's job never waits on
    an engine that is gone. A store placed already keeps its place (its retry finds its objects there)."""
    store = Store.objects.only("host_id", "port").get(pk=store_id)
    placed = store.host_id is not None and store.port is not None
    return store_place(store_id=store_id, exclude_host_ids=() if placed else hosts_away_ids())


class StoreNotAway(ProvisioningError):
    """The store is no longer an unreachable store of the lost host (its host answered again)."""


@transaction.atomic
def store_rehome(*, store_id: int, lost_host_id: int, reason: str) -> Store:
    """Place an unreachable store of a lost host on another host (placement as for a new store: capacity,
    draining and "accepts new stores" honoured; never the lost host nor another that is away), and record
    what it leaves on the lost host. Under the store's row lock, so the lost host's heartbeat, which brings
    back only the stores still placed on it, and this never both win. Idempotent: a store already placed
    elsewhere (a retried restore) keeps that place. Raises NoCapacity, or StoreNotAway when the store is no
    longer unreachable (nothing is changed)."""
    store = Store.objects.select_for_update().get(pk=store_id)
    if store.status != Store.Status.UNREACHABLE:
        raise StoreNotAway(
            f"the store is {store.get_status_display().lower()} now (its host answered again?); nothing was moved"
        )
    if store.host_id != lost_host_id:
        return Store.objects.select_related("host").get(pk=store_id)
    old_port = store.port
    store = store_place(store_id=store_id, exclude_host_ids={lost_host_id} | hosts_away_ids())
    StaleStack.objects.create(store=store, host_id=lost_host_id, object_key=store.object_key, reason=reason[:300])
    store_event_record(
        store_id=store_id,
        note=f"placed on host {store.host.name} port {store.port} ({reason}); its old stack on host "
        f"{lost_host_id} port {old_port} is removed when that host answers again",
    )
    return store


def stale_stacks_remove(*, host: Host) -> list[StaleStack]:
    """Remove what stores that live elsewhere now left on this host (its engine answers again): their
    containers first (so none runs or holds its port), then networks and volumes, by label. A store that
    runs on this host again by now keeps everything. An engine that fails meanwhile leaves the rest for the
    next round. Returns the rows handled."""
    handled = []
    for stale in StaleStack.objects.filter(host=host, removed_at=None).select_related("store"):
        if stale.store.host_id == host.pk:
            report = "the store runs on this host again: nothing removed"
        else:
            try:
                removed = docker_client.labelled_objects_remove(
                    label=f"shophosting.store={stale.object_key}", base_url=host.engine
                )
            except ProvisioningError as exc:
                logger.warning("host %s: the stale stack of store %s stays for now: %s", host.name, stale.store_id, exc)
                continue
            report = "; ".join(f"{len(names)} {kind}: {', '.join(names)}" for kind, names in removed.items() if names)
            report = f"removed {report}" if report else "nothing of it was left on the engine"
            store_event_record(
                store_id=stale.store_id, note=f"host {host.name} answers again; its old stack there: {report}"[:5000]
            )
            logger.info("host %s: stale stack of store %s: %s", host.name, stale.store_id, report)
        StaleStack.objects.filter(pk=stale.pk).update(removed_at=timezone.now(), report=report)
        handled.append(stale)
    return handled
