"""Stores in a given status, reached the way production reaches it: store_create, then each transition
through stores.services.store_transition, which checks every edge against the allowed-edges table and
writes a StoreEvent. Nothing here writes a status field directly, so a factory-made store can never be
in a state the platform could not have reached.

These stores are records only: no job ran and no container exists. Tests that need a running store use
the Docker fixtures (tests/test_backups.py: live_store, tests/test_provisioning.py: paid_store)."""

import itertools

import pytest

# The transitions that lead from a new store (awaiting payment) to each status, as the platform walks them:
# paid -> queued -> provisioning -> active; a failed setup stops at provisioning; deletes start from a store
# that was live.
_PATHS = {
    "awaiting_payment": (),
    "queued": ("queued",),
    "provisioning": ("queued", "provisioning"),
    "active": ("queued", "provisioning", "active"),
    "suspended": ("queued", "provisioning", "active", "suspended"),
    "failed": ("queued", "provisioning", "failed"),
    "deleting": ("queued", "provisioning", "active", "deleting"),
    "deleted": ("queued", "provisioning", "active", "deleting", "deleted"),
    "unreachable": ("queued", "provisioning", "active", "unreachable"),
    # A warm pool stack's row is made pooled by stores.services.store_pooled_create, never reached from a
    # customer's store: not something this factory makes.
    "pooled": None,
}


@pytest.fixture
def store_in_status(db, user_factory, woo_plan):
    """store_in_status(status, customer=None, plan=None, domain=None, **store_create_args) -> Store.

    A new store (a fresh customer, the WooCommerce Commerce Core plan and a unique *.test domain unless
    given) walked through the real transitions to `status` (a Store.Status value)."""
    from stores.models import Store
    from stores.services import store_create, store_transition

    assert set(_PATHS) == set(Store.Status.values), "a new store status needs a path in tests/plugins/factories.py"
    numbers = itertools.count(1)

    def make(status: str, *, customer=None, plan=None, domain: str | None = None, **fields) -> Store:
        if _PATHS.get(status, ()) is None:
            raise ValueError(f"a {status} store is not made here (see _PATHS)")
        if status not in _PATHS:
            raise ValueError(f"unknown store status {status!r}; one of {', '.join(_PATHS)}")
        store = store_create(
            customer=customer or user_factory(),
            plan=plan or woo_plan,
            domain=domain or f"store{next(numbers)}.test",
            **fields,
        )
        for to in _PATHS[status]:
            store_transition(store_id=store.pk, to=to)
        store.refresh_from_db()
        return store

    return make


@pytest.fixture
def recorded_active_store(store_in_status):
    """A store recorded as active, with no containers and no jobs: for every test whose checks happen
    before Docker is asked anything (pages, permissions, locks, refusals)."""
    return store_in_status("active")


UNREACHABLE_ENGINE = "tcp://127.0.0.1:9"  # the discard port: nothing answers there


@pytest.fixture
def place_on_unreachable_engine(db):
    """place(store) -> the store, recorded on a host whose engine never answers (UNREACHABLE_ENGINE), so its
    jobs really run and fail at their first engine call: for what a failure leaves, without Docker."""
    from stores.models import Host, Store

    def place(store):
        engine = {"docker_url": UNREACHABLE_ENGINE, "memory_capacity_mb": 1024, "cpu_capacity": 1}
        host, _ = Host.objects.get_or_create(name="unreachable", defaults=engine)
        Store.objects.filter(pk=store.pk).update(host=host, port=20001)
        store.refresh_from_db()
        return store

    return place
