"""One operation at a time per store.

Everything that touches a store's containers or data is a job of the engine (provisioning, of any kind:
setup, suspend, restart, backup, restore, verification ...), admitted here under the store's row lock and
refused while any other is active. The engine registers its query of active jobs from its AppConfig.ready(),
so stores never imports the apps above it.
"""

from collections.abc import Callable

from django.db import transaction

from stores.exceptions import StoreBusy
from stores.models import Store

# store id -> a sentence naming an active operation on that store ("A restore of this store is running
# (since 10:02 UTC)."), or None.
ActiveOperationQuery = Callable[[int], str | None]
_queries: dict[str, ActiveOperationQuery] = {}


def store_operations_register(*, name: str, query: ActiveOperationQuery) -> None:
    """Called from an app's AppConfig.ready(); registering the same name again replaces the query."""
    _queries[name] = query


def store_operation_active(*, store_id: int) -> str | None:
    """The first active operation on the store, in words, or None. Only a hint unless the row is locked."""
    for query in _queries.values():
        found = query(store_id)
        if found:
            return found
    return None


def store_busy_refusal(*, store_id: int) -> str | None:
    """What a request for another operation on the store is told while one is active, or None."""
    active = store_operation_active(store_id=store_id)
    return f"{active} Try again once it has finished." if active else None


def store_lock_for_operation(*, store_id: int) -> Store:
    """Lock the store's row and refuse (StoreBusy) while another operation on it is active.

    Call it inside the transaction that records the new operation, so the check and the record commit
    together and a second request waits on the lock, then sees the first one's row."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("store_lock_for_operation must run inside the transaction that records the operation")
    store = Store.objects.select_for_update().get(pk=store_id)
    refusal = store_busy_refusal(store_id=store.pk)
    if refusal:
        raise StoreBusy(refusal)
    return store
