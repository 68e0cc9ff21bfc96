"""One operation at a time per store.

Everything that touches a store's containers or data (provisioning jobs of every kind, backup and restore
runs, backup verification) is admitted here, under the store's row lock, and refused while any other
operation on the store is active. Each app keeps its own record of what runs (ProvisioningJob, BackupRun,
RestoreRun) and registers a query of its active operations from its AppConfig.ready(); stores never imports
those apps. An operation without a row of its own (verification) holds a lease on the store row instead.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from stores.exceptions import StoreBusy
from stores.models import Store

# store id -> a sentence naming an active operation on that store ("A restore of this store is running
# (since 10:02 UTC)."), or None.
ActiveOperationQuery = Callable[[int], str | None]
_queries: dict[str, ActiveOperationQuery] = {}


def store_operations_register(*, name: str, query: ActiveOperationQuery) -> None:
    """Called from an app's AppConfig.ready(); registering the same name again replaces the query."""
    _queries[name] = query


def _lease_active(store_id: int) -> str | None:
    store = Store.objects.filter(pk=store_id, lease_expires_at__gt=timezone.now()).only("lease_holder").first()
    if store is None:
        return None
    return f"{store.lease_holder} is running on this store."


store_operations_register(name="stores.lease", query=_lease_active)


def store_operation_active(*, store_id: int) -> str | None:
    """The first active operation on the store, in words, or None. Only a hint unless the row is locked."""
    for query in _queries.values():
        found = query(store_id)
        if found:
            return found
    return None


def store_lock_for_operation(*, store_id: int) -> Store:
    """Lock the store's row and refuse (StoreBusy) while another operation on it is active.

    Call it inside the transaction that records the new operation, so the check and the record commit
    together and a second request waits on the lock, then sees the first one's row."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("store_lock_for_operation must run inside the transaction that records the operation")
    store = Store.objects.select_for_update().get(pk=store_id)
    active = store_operation_active(store_id=store.pk)
    if active:
        raise StoreBusy(f"{active} Try again once it has finished.")
    return store


@contextmanager
def store_lease(*, store_id: int, holder: str, seconds: int) -> Iterator[Store]:
    """Hold the store for an operation that has no run row of its own. The lease expires by itself after
    `seconds`, so a worker that dies while holding it does not block the store for ever."""
    with transaction.atomic():
        store = store_lock_for_operation(store_id=store_id)
        store.lease_holder = holder
        store.lease_expires_at = timezone.now() + timedelta(seconds=seconds)
        store.save(update_fields=["lease_holder", "lease_expires_at"])
    try:
        yield store
    finally:
        Store.objects.filter(pk=store_id, lease_holder=holder).update(lease_holder="", lease_expires_at=None)
