"""The warm pool on the real engine: stacks built ahead of orders, claimed by paid orders and made the store's
own (every secret rotated), refilled to the target, replaced when their images are old, never claimed twice."""

import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from provisioning import docker_client
from provisioning.images import image_tags
from provisioning.models import PoolStack, PoolTarget, ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.pool import pool_claim, pool_refill
from provisioning.steps import stack_remove
from stores.models import Host, Store
from stores.selectors import host_reservation
from stores.services import store_create, store_credentials
from tests.test_fleet import two_hosts  # noqa: F401 - the fixture: the local engine and a second one
from tests.test_provisioning import NGINX_PORT, fetch, fetch_until

pytestmark = [pytest.mark.django_db, pytest.mark.docker]
State = PoolStack.State
SALTS = "/var/www/html/wp-content/shophosting-salts.php"


@pytest.fixture
def pool(woo_plan, store_images, clean_test_stores, django_capture_on_commit_callbacks, run_pool_worker):
    """Sets the pool's target for the WooCommerce plan's size class; `fill()` runs one refill and builds
    what it asked for with a real worker on the pool queue."""

    class Pool:
        def target(self, ready: int) -> PoolTarget:
            target, _ = PoolTarget.objects.update_or_create(
                platform=woo_plan.platform,
                memory_mb=woo_plan.memory_mb,
                cpus=woo_plan.cpu_limit,
                defaults={"ready_target": ready},
            )
            return target

        def fill(self) -> dict[str, int]:
            with django_capture_on_commit_callbacks(execute=True):
                started = pool_refill()
            with django_capture_on_commit_callbacks(execute=True):
                run_pool_worker()
            return started

        def ready(self) -> list[PoolStack]:
            return list(PoolStack.objects.filter(state=State.READY).select_related("store", "store__host"))

    return Pool()


@pytest.fixture
def order(user_factory, woo_plan, django_capture_on_commit_callbacks, run_provisioning_worker):
    """A paid order run to its end by a real worker on the provisioning queue: (store, job)."""

    def place(domain: str, title: str):
        store = store_create(customer=user_factory(), plan=woo_plan, domain=domain, site_title=title)
        with django_capture_on_commit_callbacks(execute=True):
            job = store_order_paid(store_id=store.pk)
        with django_capture_on_commit_callbacks(execute=True):
            run_provisioning_worker()
        job.refresh_from_db()
        store = Store.objects.select_related("host", "plan").get(pk=store.pk)
        assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
        assert store.status == Store.Status.ACTIVE
        return store, job

    return place


def exec_in(store: Store, role: str, command: list[str], environment: dict | None = None) -> tuple[int, str]:
    return docker_client.container_exec(
        name=f"{store.slug}-{role}", command=command, environment=environment, base_url=store.host.engine
    )


def db_opens(store: Store, user: str, password: str) -> bool:
    """Whether `user` with `password` gets into the store's database (over TCP, as the application does)."""
    code, _ = exec_in(
        store,
        "db",
        ["bash", "-c", 'MYSQL_PWD="$P" mariadb -h127.0.0.1 -u"$U" -e "SELECT 1"'],
        {"P": password, "U": user},
    )
    return code == 0


HEALTHCHECK_CNF = "/var/lib/mysql/.my-healthcheck.cnf"


def healthcheck_password(store: Store) -> str:
    """The password of the image's `healthcheck` account, from the file its healthcheck reads."""
    code, output = exec_in(store, "db", ["cat", HEALTHCHECK_CNF])
    assert code == 0, output
    [password] = [line.split("=", 1)[1] for line in output.splitlines() if line.startswith("password=")]
    return password


# New application keys written as a claim writes them (atomically), while Apache runs.
SALTS_REWRITE = (
    r"""$o = "<?php\n"; foreach (['AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT',"""
    r"""'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT'] as $n) { $o .= "define('$n', '" ."""
    r"""bin2hex(random_bytes(32)) . "');\n"; } $f = getenv('F'); file_put_contents("$f.tmp", $o);"""
    r"""chown("$f.tmp", 'www-data'); rename("$f.tmp", $f);"""
)
# Whether a logged_in cookie validates with the keys on disk now (the CLI reads them afresh).
COOKIE_VALID = (
    r"""$_SERVER['HTTP_HOST'] = getenv('H'); $_SERVER['REQUEST_METHOD'] = 'GET'; require '/var/www/html/wp-load.php';"""
    r"""echo wp_validate_auth_cookie(urldecode(getenv('C')), 'logged_in') ? 'valid' : 'invalid';"""
)
LOGIN_COOKIE = "wordpress_test_cookie=WP%20Cookie%20check"


def logged_in_cookie(store: Store, domain: str, user: str, password: str) -> str | None:
    """Log in on the store's own port; the value of the logged_in cookie WordPress set, if any."""
    login = fetch(
        store.port, domain, "/wp-login.php", data={"log": user, "pwd": password, "testcookie": "1"}, cookie=LOGIN_COOKIE
    )
    for header in login.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        if name.startswith("wordpress_logged_in_"):
            return rest.split(";", 1)[0]
    return None


def salts(store: Store) -> str:
    code, output = exec_in(store, "web", ["cat", SALTS])
    assert code == 0, output
    return output


def test_an_order_claims_a_ready_stack_and_every_secret_becomes_the_stores(pool, order, acme_server):
    pool.target(1)
    assert pool.fill() == {"built": 1, "removed": 0}
    [stack] = pool.ready()
    placeholder = store_credentials(stack.store)
    pool_salts = salts(stack.store)
    pool_healthcheck = healthcheck_password(stack.store)
    pool_key = stack.store.object_key

    store, job = order("claimed.test", "Claimed Shop")

    assert job.path == ProvisioningJob.Path.CLAIMED
    stack.refresh_from_db()
    assert (stack.state, stack.claimed_by_id) == (State.CLAIMED, store.pk)
    assert Store.objects.get(pk=stack.store_id).status == Store.Status.DELETED
    assert store.object_key == pool_key and store.port is not None
    # Live through nginx with its own title, on the plan's limits, published on loopback.
    page = fetch_until(NGINX_PORT, "claimed.test", "Claimed Shop")
    assert page.status == 200 and "<title>Claimed Shop" in page.text
    web = docker_client.client().containers.get(f"{store.slug}-web").attrs
    assert web["Config"]["Labels"]["shophosting.pool"] == "1"  # the pool's container, kept running
    assert web["State"]["StartedAt"] < job.started_at.isoformat().replace("+00:00", "Z")
    code, secret = exec_in(store, "web", ["cat", "/run/secrets/db_password"])
    assert code == 0 and secret == store_credentials(store)["db_password"]
    assert web["HostConfig"]["PortBindings"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(store.port)}]
    assert web["HostConfig"]["Memory"] == store.plan.memory_mb * 1024 * 1024
    assert web["HostConfig"]["NanoCpus"] == int(store.plan.cpu_limit * 1_000_000_000)

    # Every secret is new: database passwords, the admin, the application's salts.
    creds = store_credentials(store)
    for key in ("db_password", "db_root_password", "admin_password"):
        assert creds[key] != placeholder[key]
    assert creds["admin_user"] != placeholder["admin_user"]
    assert salts(store) != pool_salts
    # The pool's passwords no longer open the database; the store's do.
    assert not db_opens(store, "wordpress", placeholder["db_password"])
    assert not db_opens(store, "root", placeholder["db_root_password"])
    assert db_opens(store, "wordpress", creds["db_password"])
    assert db_opens(store, "root", creds["db_root_password"])
    # The image's healthcheck account too: a new password, in the file its healthcheck reads.
    healthcheck = healthcheck_password(store)
    assert healthcheck != pool_healthcheck
    assert not db_opens(store, "healthcheck", pool_healthcheck)
    assert db_opens(store, "healthcheck", healthcheck)
    # The store's admin logs in with its own password; the pool's admin is gone.
    cookie = logged_in_cookie(store, "claimed.test", creds["admin_user"], creds["admin_password"])
    assert cookie is not None
    assert logged_in_cookie(store, "claimed.test", placeholder["admin_user"], placeholder["admin_password"]) is None
    # Keys rewritten while Apache runs (as a claim does) are the next request's: opcache never keeps the old
    # ones. Apache has just read them (the logins above); the cookie it signs now validates with the new ones.
    code, output = exec_in(store, "web", ["php", "-r", SALTS_REWRITE], {"F": SALTS})
    assert code == 0, output
    cookie = logged_in_cookie(store, "claimed.test", creds["admin_user"], creds["admin_password"])
    code, output = exec_in(store, "web", ["php", "-r", COOKIE_VALID], {"C": cookie, "H": "claimed.test"})
    assert (code, output.strip()) == (0, "valid"), output[-500:]
    options = "SELECT option_value FROM wp_options WHERE option_name IN ('admin_email', 'blogname', 'home')"
    code, home = exec_in(
        store,
        "db",
        ["bash", "-c", 'MYSQL_PWD="$(cat /run/secrets/db_root_password)" mariadb -N -uroot wordpress -e "$Q"'],
        {"Q": options + " ORDER BY option_name"},
    )
    assert code == 0 and home.split() == [creds["admin_email"], "Claimed", "Shop", "http://claimed.test"], home
    # Staff see the path and each step's time; no secret is in the log.
    steps = list(job.steps.order_by("order"))
    assert all(step.duration_seconds is not None for step in steps)
    log = " ".join(line.message for step in steps for line in step.log_lines.all())
    assert "claimed warm pool stack" in log
    assert not any(creds[key] in log or placeholder[key] in log for key in ("db_password", "admin_password"))

    # The pool is empty now: the next order is built from scratch, with the same result and its own secrets.
    other, other_job = order("built.test", "Built Shop")
    assert other_job.path == ProvisioningJob.Path.BUILT
    assert fetch_until(NGINX_PORT, "built.test", "Built Shop").status == 200
    other_creds = store_credentials(other)
    for key in ("db_password", "db_root_password", "admin_password"):
        assert len({creds[key], other_creds[key], placeholder[key]}) == 3
    assert salts(other) != salts(store)

    # A claimed store's teardown step finds its objects by the pool's key (the job itself waits for the first
    # backup queued when the store went live).
    removed: list[str] = []
    stack_remove(store, removed.append)
    assert removed and not any(docker_client.labelled_objects(label=f"shophosting.store={pool_key}").values())


def test_the_pool_refills_to_its_target_unreachable_and_counted_and_shrinks(pool):
    host = Host.objects.get(name="local")
    before = host_reservation(host=host)
    pool.target(2)
    assert pool.fill() == {"built": 2, "removed": 0}
    stacks = pool.ready()
    assert len(stacks) == 2
    assert pool.fill() == {"built": 0, "removed": 0}  # at its target: nothing to do
    # Counted against the host; published on loopback only, no vhost, no names.
    memory, _ = host_reservation(host=host)
    assert memory > before[0]
    for stack in stacks:
        assert stack.store.customer is None and not stack.store.names.exists()
        label = f"shophosting.store={stack.store.pk}"
        for container in docker_client.client().containers.list(filters={"label": label}):
            published = container.attrs["HostConfig"]["PortBindings"]
            if container.name.endswith("-web"):  # on the port it holds; no vhost routes to it
                assert published == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(stack.store.port)}]}
            else:
                assert published in (None, {}), container.name
        assert not (Path(settings.NGINX_SITES_DIR) / f"{stack.store.proxy_key}.conf").exists()

    pool.target(1)  # lowered: one goes, with its objects
    assert pool.fill() == {"built": 0, "removed": 1}
    [removed] = PoolStack.objects.filter(state=State.REMOVED)
    assert not any(docker_client.labelled_objects(label=f"shophosting.store={removed.store_id}").values())
    assert len(pool.ready()) == 1

    # A draining host takes no new store, so nothing claims there: its pool goes, and none is built.
    Host.objects.filter(pk=host.pk).update(status=Host.Status.DRAINING)
    assert pool.fill() == {"built": 0, "removed": 1}
    assert pool.ready() == [] and pool.fill() == {"built": 0, "removed": 0}
    Host.objects.filter(pk=host.pk).update(status=Host.Status.READY)
    assert pool.fill() == {"built": 1, "removed": 0}
    assert len(pool.ready()) == 1

    host.active = False  # the host leaves service: its pool goes
    host.save(update_fields=["active"])
    assert pool.fill() == {"built": 0, "removed": 1}
    assert pool.ready() == []


def test_on_a_host_beyond_loopback_a_pool_stack_publishes_nothing_and_its_claim_replaces_the_web_container(
    two_hosts,  # noqa: F811 - the fixture imported from test_fleet
    second_engine,
    pool,
    order,
):
    """A host whose stores publish on its private address (the second engine, 10.213.0.2): its pool stacks
    publish nothing there, so a claim replaces the pool's web container with one of the store's own, on the
    store's port, with new application keys."""
    local, remote = two_hosts
    Host.objects.filter(pk=local.pk).update(active=False)  # the pool and the order on the remote host only
    pool.target(1)
    assert pool.fill() == {"built": 1, "removed": 0}
    [stack] = pool.ready()
    assert stack.host == remote
    engine = docker_client.client(remote.engine)
    pool_web = engine.containers.get(f"{stack.store.slug}-web").attrs
    assert not pool_web["HostConfig"]["PortBindings"]  # unreachable: nothing published on the private address
    placeholder, pool_salts = store_credentials(stack.store), salts(stack.store)

    store, job = order("remote-claim.test", "Remote Claim")

    assert job.path == ProvisioningJob.Path.CLAIMED and store.host == remote
    web = engine.containers.get(f"{store.slug}-web").attrs
    assert web["Id"] != pool_web["Id"] and "shophosting.pool" not in web["Config"]["Labels"]
    assert web["HostConfig"]["PortBindings"]["80/tcp"] == [
        {"HostIp": second_engine.address, "HostPort": str(store.port)}
    ]
    assert salts(store) != pool_salts
    creds = store_credentials(store)
    assert not db_opens(store, "wordpress", placeholder["db_password"])
    assert db_opens(store, "wordpress", creds["db_password"])
    page = fetch_until(NGINX_PORT, "remote-claim.test", "Remote Claim")
    assert page.status == 200 and "<title>Remote Claim" in page.text
    log = " ".join(line.message for step in job.steps.all() for line in step.log_lines.all())
    assert "the pool's web server removed, with its application keys" in log


@pytest.fixture
def rebuilt_web_image(tmp_path):
    """`rebuild()` gives the web image's tag (`:local`) a new image id, as a rebuild of the image does; the
    tag points at this checkout's build again afterwards."""
    hashed, local = image_tags("wordpress")
    (tmp_path / "Dockerfile").write_text(f"FROM {hashed}\nLABEL shophosting.test=rebuilt\n")

    def rebuild() -> str:
        return docker_client.image_build(path=str(tmp_path), tags=[local])

    yield rebuild
    docker_client.image_tag(image=hashed, tag=local)


def test_a_stack_on_an_older_image_is_replaced_and_never_claimed(pool, order, settings, rebuilt_web_image):
    local_images = settings.STORE_IMAGES
    older = image_tags("wordpress")[0]  # the same build under its content tag: another image reference
    settings.STORE_IMAGES = {**local_images, "woocommerce": {**local_images["woocommerce"], "web": older}}
    pool.target(1)
    pool.fill()
    [stale] = pool.ready()
    assert stale.images["web"] == older

    settings.STORE_IMAGES = local_images  # the platform moved on
    store, job = order("fresh.test", "Fresh Shop")
    assert job.path == ProvisioningJob.Path.BUILT
    assert fetch_until(NGINX_PORT, "fresh.test", "Fresh Shop").status == 200
    stale.refresh_from_db()
    assert stale.state == State.READY and stale.claimed_by is None

    assert pool.fill() == {"built": 1, "removed": 1}  # replaced
    stale.refresh_from_db()
    assert stale.state == State.REMOVED
    [fresh] = pool.ready()
    assert fresh.images["web"] == local_images["woocommerce"]["web"]
    assert fresh.image_ids["web"] == docker_client.image_id(tag=local_images["woocommerce"]["web"])

    # The image is rebuilt under the same tag: the stack built from the old id is never handed out either.
    rebuilt = rebuilt_web_image()
    assert rebuilt != fresh.image_ids["web"]
    other, other_job = order("rebuilt.test", "Rebuilt Shop")
    assert other_job.path == ProvisioningJob.Path.BUILT
    fresh.refresh_from_db()
    assert fresh.state == State.READY and fresh.claimed_by is None
    assert pool.fill() == {"built": 1, "removed": 1}
    [newest] = pool.ready()
    assert newest.image_ids["web"] == rebuilt


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_orders_at_once_never_claim_the_same_stack(_data_migrations_put_back, pool, user_factory, woo_plan):
    pool.target(2)
    pool.fill()
    assert len(pool.ready()) == 2
    stores = [
        store_create(customer=user_factory(), plan=woo_plan, domain=f"race{i}.test", site_title=f"Race {i}")
        for i in range(3)
    ]
    start = threading.Barrier(len(stores))
    claimed: dict[int, int | None] = {}

    def claim(store_id: int) -> None:
        try:
            start.wait()
            stack = pool_claim(store_id=store_id)
            claimed[store_id] = stack.pk if stack else None
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(store.pk,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    taken = [stack_id for stack_id in claimed.values() if stack_id is not None]
    assert len(claimed) == 3 and len(taken) == 2 and len(set(taken)) == 2
    for stack in PoolStack.objects.filter(pk__in=taken):
        assert stack.state == State.CLAIMED
        store = Store.objects.get(pk=stack.claimed_by_id)
        assert store.object_key == str(stack.store_id) and store.port is not None
