"""The warm pool's job kinds (provisioning/pool.py says what the pool is): `pool_fill` builds one pool stack,
`pool_remove` tears one down. Both run on the `pool` queue, which a paying customer's job never waits
behind, on the pool stack's own store row (status pooled)."""

import ipaddress

from django.conf import settings

from provisioning import docker_client, pool
from provisioning.kinds import JobKind, Log, Step
from provisioning.models import PoolStack
from provisioning.steps import (
    TEARDOWN_STEPS,
    _services,
    _stack,
    _start,
    app_install,
    data_services_start,
    network_and_volumes,
    wait_http,
)
from provisioning.store_images import store_images_record
from stores import services as store_services
from stores.models import Store

POOL_QUEUE = "pool"


def pool_allocate(store: Store, log: Log) -> None:
    """The pool stack's place on the host it is built for, today's images, and placeholder credentials."""
    stack = PoolStack.objects.get(store_id=store.pk)
    store = store_services.store_place(store_id=store.pk, host_id=stack.host_id)
    log(f"placed on host {store.host.name} (port {store.port} held, nothing published)")
    images = store_images_record(store_id=store.pk)
    # Their ids too: a rebuilt image keeps its reference (`:local`), and the claim compares ids. Read before
    # the containers are created from the same references, so a rebuild in between makes the stack look old
    # (replaced, never handed out), never new.
    image_ids = {role: docker_client.image_id(tag=image, base_url=store.host.engine) for role, image in images.items()}
    pool.pool_stack_images_record(
        store_id=store.pk, images=images, image_ids={role: i for role, i in image_ids.items() if i}
    )
    log(f"images: {', '.join(f'{role} {image}' for role, image in sorted(images.items()))}")
    if not store_services.store_credentials(store).get("db_password"):
        store_services.store_credentials_save(
            store_id=store.pk, credentials=pool.pool_stack_placeholders(store_id=store.pk)
        )
        log("generated placeholder credentials (stored encrypted; a claim replaces every one)")


def pool_app_start(store: Store, log: Log) -> None:
    """Start what serves requests, publishing nothing; the installer (next) needs PHP, not Apache."""
    by_role = {s.role: s for s in _services(store)}
    _start(store, [by_role[role] for role in _stack(store).app_roles], log)


def pool_warm(store: Store, log: Log) -> None:
    """Render the front page once, as the pool's: PHP compiles and caches (opcache) every file a page needs,
    which a claim keeps running, so the store's first page after a claim does not wait for that. A stack
    that publishes nothing (a host beyond loopback) is not asked: a claim replaces its web container."""
    if not ipaddress.ip_address(store.host.bind_address).is_loopback:
        log("nothing to warm: the web container publishes nothing on this host, and a claim replaces it")
        return
    wait_http(store, log, timeout=settings.STORE_WEB_READY_TIMEOUT)


KINDS = (
    JobKind(
        name=pool.POOL_FILL,
        title="Build a warm pool stack",
        steps=(
            Step("allocate", "Reserve a place on the host", pool_allocate),
            Step("network", "Create the network and volumes", network_and_volumes),
            Step("data_services", "Start the database and cache", data_services_start),
            Step("app", "Start the web server", pool_app_start),
            Step("install", "Install the application with a placeholder identity", app_install),
            Step("warm", "Render the front page once", pool_warm),
        ),
        store_statuses=frozenset({Store.Status.POOLED}),
        queue=POOL_QUEUE,
        timeout_seconds=lambda: settings.RQ_QUEUES[POOL_QUEUE]["DEFAULT_TIMEOUT"],
        orders_ahead=pool.pool_fill_orders_ahead,
        on_success=pool.pool_fill_succeeded,
        on_failure=pool.pool_fill_failed,
    ),
    JobKind(
        name=pool.POOL_REMOVE,
        title="Remove a warm pool stack",
        steps=tuple(step for step in TEARDOWN_STEPS if step.name in ("remove", "release")),
        store_statuses=frozenset({Store.Status.POOLED, Store.Status.DELETING}),
        store_status_on_enqueue=Store.Status.DELETING,
        store_status_on_success=Store.Status.DELETED,
        queue=POOL_QUEUE,
        on_success=pool.pool_remove_succeeded,
    ),
)
