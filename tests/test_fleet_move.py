"""Moving a store between two real engines (provisioning/moves.py, move_steps.py), hosts in maintenance, and
the refusals. The engines: the platform's own and the second one in a network namespace over TLS
(tests/plugins/engines.py), set up as in tests/test_fleet.py."""

import functools
import http.client
import ssl
import threading
import time
from pathlib import Path

import pytest
from django.urls import reverse

from provisioning import docker_client
from provisioning.models import JobLogLine, JobStep, ProvisioningJob
from provisioning.move_models import HostEvacuation, StoreMove
from provisioning.moves import (
    MoveError,
    evacuation_advance,
    evacuation_progress,
    host_maintenance_start,
    store_move_request,
)
from provisioning.stacks.base import DB_ROOT_CLIENT_ENV
from provisioning.store_images import store_image_set
from stores.models import Host, Store
from stores.services import host_transition, store_credentials
from tests.test_fleet import _hosts, two_hosts  # noqa: F401 - the fixture, shared
from tests.test_provisioning import HTTPS_PORT, NGINX_PORT, _fetch_https_once, fetch_until, pebble_root

UPLOADS = "/var/www/html/wp-content/uploads"


def sql(store: Store, statement: str) -> str:
    code, output = docker_client.container_exec(
        name=f"{store.slug}-db",
        command=["sh", "-c", f'{DB_ROOT_CLIENT_ENV} mariadb -uroot wordpress -N -B -e "$0"', statement],
        base_url=store.host.engine,
    )
    assert code == 0, output
    return output.strip()


def web(store: Store, script: str) -> str:
    code, output = docker_client.container_exec(
        name=f"{store.slug}-web", command=["sh", "-c", script], base_url=store.host.engine
    )
    assert code == 0, output
    return output.strip()


def post_insert(store: Store, title: str) -> None:
    columns = "post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt, post_status, post_name,"
    columns += " to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, post_type"
    slug = title.lower().replace(" ", "-")
    values = f"1, NOW(), NOW(), 'Body of {title}', '{title}', '', 'publish', '{slug}', '', '', NOW(), NOW(), '', 'post'"
    sql(store, f"INSERT INTO wp_posts ({columns}) VALUES ({values})")  # noqa: S608 - the test's own constants


def posts(store: Store) -> list[str]:
    return sql(store, "SELECT post_title FROM wp_posts WHERE post_status='publish' ORDER BY ID").splitlines()


def store_objects(store: Store, host: Host) -> dict[str, list[str]]:
    return docker_client.labelled_objects(label=f"shophosting.store={store.object_key}", base_url=host.engine)


NOTHING = {"containers": [], "networks": [], "volumes": []}


def front_status(domain: str) -> int:
    """What nginx answers for the store's front page: over HTTPS when HTTP redirects there (the store has its
    certificate), so the answer is the store's (or the maintenance page), not nginx's redirect."""
    connection = http.client.HTTPConnection("127.0.0.1", NGINX_PORT, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": domain, "Connection": "close"})
        response = connection.getresponse()
        response.read()
        if response.status != 301:
            return response.status
    finally:
        connection.close()
    return _fetch_https_once(HTTPS_PORT, domain, trusted_root=_root()).status


@functools.cache
def _root() -> str:
    return pebble_root()


class Poller(threading.Thread):
    """Asks nginx for the store's front page every 50 ms, noting (when it asked, the answer)."""

    def __init__(self, domain: str):
        super().__init__(daemon=True)
        self.domain, self.samples, self.stop = domain, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            asked = time.time()
            try:
                status = front_status(self.domain)
            except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
                status = type(exc).__name__
            self.samples.append((asked, status))
            time.sleep(0.05)


@pytest.fixture
def live_store(
    two_hosts,  # noqa: F811
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    run_provisioning_worker,
    django_capture_on_commit_callbacks,
):
    """make(domain) -> a live WooCommerce store on host 1 (the platform's engine), through nginx."""
    from provisioning.orders import store_order_paid
    from stores.services import store_create

    local, _ = two_hosts

    def make(domain: str) -> Store:
        store = store_create(customer=user_factory(), plan=woo_plan, domain=domain, site_title="Moving Shop")
        with django_capture_on_commit_callbacks(execute=True):
            store_order_paid(store_id=store.pk)
        run_provisioning_worker()
        store = Store.objects.select_related("host").get(pk=store.pk)
        assert store.status == Store.Status.ACTIVE, store.jobs.get().error
        assert store.host == local
        assert fetch_until(NGINX_PORT, store.domain, "Moving Shop").status == 200
        return store

    return make


def _move(store, host, capture, run_worker, **kwargs) -> StoreMove:
    with capture(execute=True):
        move = store_move_request(store_id=store.pk, host_id=host.pk if host else None, **kwargs)
    with capture(execute=True):
        run_worker()
    move.refresh_from_db()
    return move


def _move_polled(store, host, capture, run_worker) -> tuple[StoreMove, Poller]:
    """The move run with a Poller asking nginx for the store's front page all along."""
    poller = Poller(store.domain)
    poller.start()
    try:
        return _move(store, host, capture, run_worker), poller
    finally:
        poller.stop.set()
        poller.join()


def _job_error(move: StoreMove) -> str:
    return ProvisioningJob.objects.get(pk=move.job_id).error if move.job_id else move.error


@pytest.mark.docker
@pytest.mark.django_db
def test_a_live_store_moves_to_the_second_engine_with_its_posts_files_and_credentials_answering_except_in_the_window(
    two_hosts,  # noqa: F811
    second_engine,
    live_store,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    settings,
):
    local, remote = two_hosts
    store = live_store("moving.test")
    credentials = store_credentials(store)
    post_insert(store, "Written before the move")
    web(store, f"mkdir -p {UPLOADS}/2026 && echo kept > {UPLOADS}/2026/kept.txt && echo gone > {UPLOADS}/gone.txt")

    # While the move copies, the shop goes on: a post and a file written, a file deleted, once the target's web
    # server is starting (after the first copy); the final sync must carry them.
    def write_during_the_move():
        deadline = time.monotonic() + 120
        while docker_client.container_state(name=f"{store.slug}-web", base_url=remote.engine)[0] == "missing":
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        post_insert(store, "Written during the move")
        web(store, f"echo new > {UPLOADS}/2026/during.txt && rm {UPLOADS}/gone.txt")
        written.set()

    written = threading.Event()
    writer = threading.Thread(target=write_during_the_move, daemon=True)
    writer.start()
    try:
        move, poller = _move_polled(store, remote, django_capture_on_commit_callbacks, run_provisioning_worker)
    finally:
        writer.join(timeout=10)
    assert move.status == StoreMove.Status.MOVED, _job_error(move)
    assert written.is_set(), "the writer never saw the target's web server"

    # The store runs on host 2, at the reserved port; host 1's port and room are free again.
    store = Store.objects.select_related("host").get(pk=store.pk)
    assert (store.host, store.port) == (remote, move.target_port)
    assert (move.source_host, move.source_port) == (local, move.source_port)
    assert store.move_host is None and store.move_port is None and store.status == Store.Status.ACTIVE
    assert remote.port_range_start <= store.port <= remote.port_range_end

    # Its posts (before and during the move), files and credentials came along.
    assert posts(store)[-2:] == ["Written before the move", "Written during the move"]
    assert web(store, f"cat {UPLOADS}/2026/kept.txt {UPLOADS}/2026/during.txt") == "kept\nnew"
    assert web(store, f"test -e {UPLOADS}/gone.txt && echo there || echo absent") == "absent"
    assert store_credentials(store) == credentials
    # The application's own database login is the same (its password file on host 2 opens the copied users).
    page = fetch_until(NGINX_PORT, store.domain, "Moving Shop")
    assert page.status == 200 and "<title>Moving Shop" in page.text
    vhost = (Path(settings.NGINX_SITES_DIR) / f"{store.proxy_key}.conf").read_text()
    assert f"proxy_pass http://{second_engine.address}:{store.port};" in vhost

    # Host 1 holds nothing of the store any more; host 2 holds its stack and no helper.
    assert store_objects(store, local) == NOTHING
    on_remote = store_objects(store, remote)
    assert on_remote["containers"] == sorted(f"{store.slug}-{role}" for role in ("cache", "db", "web"))

    # The front page answered 200 through nginx during the move, except in the recorded switch window, where
    # nginx showed the maintenance page.
    started, ended = move.downtime_started_at.timestamp(), move.downtime_ended_at.timestamp()
    assert 0 < move.downtime_seconds == pytest.approx(ended - started)
    failures = [(asked, status) for asked, status in poller.samples if status != 200]
    outside = [(asked, status) for asked, status in failures if not started - 0.2 <= asked <= ended]
    assert not outside, f"answers outside the window {started:.2f}-{ended:.2f}: {outside}"
    assert {status for _, status in failures} <= {503}
    assert any(asked < started and status == 200 for asked, status in poller.samples)
    assert any(asked > ended and status == 200 for asked, status in poller.samples)
    assert move.database_bytes > 0 and move.files_bytes > 0 and move.copy_seconds > 0
    steps = dict(JobStep.objects.filter(job_id=move.job_id).values_list("name", "status"))
    assert steps.pop("put_back") == JobStep.Status.SKIPPED
    assert set(steps.values()) == {JobStep.Status.SUCCEEDED}
    event = store.events.order_by("pk").last()
    assert f"moved from {local.name} to {remote.name}" in event.note

    # --- Host 2 goes into maintenance: its stores are moved off one at a time, with progress. One of them
    # cannot move (its provisioning failed: nothing to copy): it stays, counted failed, and the evacuation
    # goes on. (A suspended store moves: test_a_suspended_store_moves_stopped_and_resumes_on_its_new_host.)
    stuck = Store.objects.create(
        customer=store.customer, plan=store.plan, platform=store.platform, domain="stuck.test", site_title="Stuck"
    )
    Store.objects.filter(pk=stuck.pk).update(status=Store.Status.FAILED, host=remote, port=remote.port_range_end)
    with django_capture_on_commit_callbacks(execute=True):
        evacuation = host_maintenance_start(host_id=remote.pk)
    remote.refresh_from_db()
    assert remote.status == Host.Status.MAINTENANCE and not remote.accepts_new_stores
    progress = evacuation_progress(evacuation)
    assert (progress["current"], progress["remaining"], progress["moved"]) == (store, 1, 0)
    with django_capture_on_commit_callbacks(execute=True):
        run_provisioning_worker()  # the move's end queues the next store, which cannot move
    evacuation.refresh_from_db()
    assert evacuation.status == HostEvacuation.Status.COMPLETED, evacuation.status_note
    assert evacuation_progress(evacuation) == {"moved": 1, "failed": 1, "remaining": 0, "current": None}
    refused = StoreMove.objects.get(store=stuck)
    assert refused.status == StoreMove.Status.FAILED and "only an active or suspended store can be" in refused.error
    store = Store.objects.select_related("host").get(pk=store.pk)
    assert store.host == local and posts(store)[-1] == "Written during the move"
    assert store_objects(store, remote) == NOTHING
    assert fetch_until(NGINX_PORT, store.domain, "Moving Shop").status == 200
    stuck.refresh_from_db()
    assert (stuck.host, stuck.status) == (remote, Store.Status.FAILED)
    assert evacuation_advance(evacuation_id=evacuation.pk).status == HostEvacuation.Status.COMPLETED  # idempotent


@pytest.mark.docker
@pytest.mark.django_db
def test_a_move_failing_before_the_switch_leaves_the_store_where_it_was_and_nothing_on_the_target(
    two_hosts,  # noqa: F811
    second_engine,
    live_store,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    settings,
):
    local, remote = two_hosts
    store = live_store("staying.test")
    post_insert(store, "Still here")

    def untouched(move: StoreMove, step: str, reason: str) -> None:
        assert move.status == StoreMove.Status.FAILED, _job_error(move)
        job = ProvisioningJob.objects.get(pk=move.job_id)
        assert job.status == ProvisioningJob.Status.FAILED and reason in job.error, job.error
        assert job.steps.get(status=JobStep.Status.FAILED).name == step
        assert job.steps.get(name="put_back").status == JobStep.Status.SUCCEEDED
        fresh = Store.objects.select_related("host").get(pk=store.pk)
        assert (fresh.host, fresh.port, fresh.status) == (local, store.port, Store.Status.ACTIVE)
        assert fresh.move_host is None and fresh.move_port is None  # the target's port is free again
        assert store_objects(fresh, remote) == NOTHING
        assert store_objects(fresh, local)["containers"] == sorted(f"{store.slug}-{r}" for r in ("cache", "db", "web"))
        assert posts(fresh)[-1] == "Still here"
        assert front_status(store.domain) == 200

    # An image the store runs that neither the target nor the platform's engine holds (nothing is pulled):
    # the check fails, before anything is made on the target.
    cache_image = settings.STORE_IMAGES["woocommerce"]["cache"]
    store_image_set(store_id=store.pk, role="cache", image="shophosting/not-built:anywhere")
    try:
        move = _move(store, remote, django_capture_on_commit_callbacks, run_provisioning_worker)
        untouched(move, "check", "image shophosting/not-built:anywhere is not on")
        assert move.downtime_started_at is None
    finally:
        store_image_set(store_id=store.pk, role="cache", image=cache_image)

    # A target that lacks an image the platform's engine has gets it copied by the check (as a new store's
    # host does); then it cannot start the store (its reserved port is taken on that host): found once the
    # data is copied; the target's objects go, and the store never stopped answering.
    with django_capture_on_commit_callbacks(execute=True):
        move = store_move_request(store_id=store.pk, host_id=remote.pk)
    blocker = docker_client.client(remote.engine).containers.run(
        cache_image,
        name=f"{settings.STORE_OBJECT_PREFIX}-port-blocker",
        labels={"shophosting.env": settings.STORE_OBJECT_PREFIX},
        ports={"6379/tcp": (second_engine.address, move.target_port)},
        detach=True,
    )
    # Untagged only (force: the blocker runs it): its id and layers stay, so the copy is quick.
    docker_client.client(remote.engine).images.remove(cache_image, force=True)
    try:
        poller = Poller(store.domain)
        poller.start()
        try:
            with django_capture_on_commit_callbacks(execute=True):
                run_provisioning_worker()
        finally:
            poller.stop.set()
            poller.join()
        move.refresh_from_db()
        untouched(move, "start", "could not start container")
        check_log = JobLogLine.objects.filter(step__job_id=move.job_id, step__name="check")
        check_log = list(check_log.values_list("message", flat=True))
        assert any(f"copied to host {remote.name}: {cache_image}" in line for line in check_log), check_log
        assert docker_client.image_id(tag=cache_image, base_url=remote.engine) is not None
        assert {status for _, status in poller.samples} == {200}
        assert "stayed where it was" in store.events.order_by("pk").last().note
    finally:
        blocker.remove(force=True)
        docker_client.image_copy(image=cache_image, source=None, target=remote.engine)  # whatever happened


@pytest.mark.docker
@pytest.mark.django_db
def test_a_suspended_store_moves_stopped_and_resumes_on_its_new_host(
    two_hosts,  # noqa: F811
    second_engine,
    live_store,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    run_backups_worker,
):
    """An evacuation must be able to empty its host of unpaid stores too. A suspended store stays stopped but
    for the move itself (its database started on the source for the copy, its stack made and checked on the
    target, then stopped), nginx shows its suspended page throughout, and a resume starts it on the new host
    with its data."""
    from provisioning.models import ProvisioningJob as Job
    from provisioning.services import job_enqueue

    local, remote = two_hosts
    store = live_store("sleeping.test")
    post_insert(store, "Written before the suspension")
    with django_capture_on_commit_callbacks(execute=True):
        job_enqueue(store_id=store.pk, kind=Job.Kind.SUSPEND)
    run_provisioning_worker()
    store = Store.objects.select_related("host").get(pk=store.pk)
    assert store.status == Store.Status.SUSPENDED
    assert fetch_until(NGINX_PORT, store.domain, "temporarily unavailable").status == 503

    move, poller = _move_polled(store, remote, django_capture_on_commit_callbacks, run_provisioning_worker)
    assert move.status == StoreMove.Status.MOVED, _job_error(move)
    assert move.downtime_started_at is None and move.database_bytes > 0 and move.files_bytes > 0
    store = Store.objects.select_related("host").get(pk=store.pk)
    assert (store.host, store.port, store.status) == (remote, move.target_port, Store.Status.SUSPENDED)
    assert store_objects(store, local) == NOTHING
    stack = sorted(f"{store.slug}-{role}" for role in ("cache", "db", "web"))
    assert store_objects(store, remote)["containers"] == stack
    states = {name: docker_client.container_state(name=name, base_url=remote.engine)[0] for name in stack}
    assert set(states.values()) == {"exited"}, states  # nothing of a suspended store runs
    assert {status for _, status in poller.samples} == {503}  # its suspended page, all along
    log = " ".join(JobLogLine.objects.filter(step__job_id=move.job_id).values_list("message", flat=True))
    assert "suspended: its database started on the source for the copy" in log and "no window" in log
    assert "no window (suspended: nothing ran)" in store.events.order_by("pk").last().note

    # Backed up where it is now, stopped (the dunning's final backup before a teardown needs this).
    from backups.models import BackupRun, RunStatus
    from backups.services.backup import backup_enqueue

    with django_capture_on_commit_callbacks(execute=True):
        backup = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    run_backups_worker()
    backup.refresh_from_db()
    assert backup.status == RunStatus.SUCCEEDED, backup.error
    states = {name: docker_client.container_state(name=name, base_url=remote.engine)[0] for name in stack}
    assert set(states.values()) == {"exited"}, states  # stopped again after the backup

    with django_capture_on_commit_callbacks(execute=True):
        job_enqueue(store_id=store.pk, kind=Job.Kind.RESUME)
    run_provisioning_worker()
    store = Store.objects.select_related("host").get(pk=store.pk)
    assert (store.host, store.status) == (remote, Store.Status.ACTIVE)
    assert fetch_until(NGINX_PORT, store.domain, "Moving Shop").status == 200
    assert posts(store)[-1] == "Written before the suspension"


# --- Refusals (no engine is asked anything) -----------------------------------------------------------------


@pytest.mark.django_db
def test_bad_moves_are_refused_with_the_reason_and_change_nothing(store_in_status, woo_plan, client, staff_user):
    home, other, draining, small = _hosts("home", "other", "draining", "small")
    store = store_in_status("active")
    Store.objects.filter(pk=store.pk).update(host=home, port=home.port_range_start)
    host_transition(host_id=draining.pk, to=Host.Status.DRAINING)
    Host.objects.filter(pk=small.pk).update(memory_capacity_mb=512)

    def refused(store_id, host_id, expected):
        before = (ProvisioningJob.objects.count(), StoreMove.objects.count())
        with pytest.raises(MoveError, match=expected):
            store_move_request(store_id=store_id, host_id=host_id)
        assert (ProvisioningJob.objects.count(), StoreMove.objects.count()) == before
        fresh = Store.objects.get(pk=store_id)
        assert fresh.move_host_id is None and fresh.move_port is None

    refused(store.pk, home.pk, "runs on home already: choose another host")
    refused(store.pk, draining.pk, "draining is draining .*ready host that takes new stores")
    refused(store.pk, small.pk, "cannot move to small: small has 512 MB free, the store needs")
    Host.objects.filter(pk=other.pk).update(active=False)
    refused(store.pk, other.pk, "other is not accepting new stores")
    Host.objects.filter(pk__in=[other.pk]).update(active=True, docker_url=home.docker_url)
    refused(store.pk, other.pk, "is the same Docker engine as home")
    Host.objects.filter(pk__in=[other.pk, small.pk]).update(active=False)
    refused(store.pk, None, "No other host that takes new stores has room")
    Host.objects.filter(pk=other.pk).update(active=True, docker_url="tcp://other.invalid:2376")

    failed = store_in_status("failed")
    Store.objects.filter(pk=failed.pk).update(host=home, port=home.port_range_start + 1)
    refused(failed.pk, other.pk, "is failed: only an active or suspended store can be moved")

    busy = ProvisioningJob.objects.create(store=store, kind=ProvisioningJob.Kind.RESTART)
    refused(store.pk, other.pk, f"This store is busy: restart \\(job #{busy.pk}\\)")
    busy.delete()

    copy = store_in_status("active")
    Store.objects.filter(pk=copy.pk).update(staging_of=store, host=home, port=home.port_range_start + 2)
    refused(store.pk, other.pk, "has a staging copy .* Delete the staging copy first")
    refused(copy.pk, other.pk, "is a staging copy: it runs on its live store's host")
    Store.objects.filter(pk=copy.pk).update(status=Store.Status.DELETED, live_domain=None)

    # The admin's move page offers only hosts with room that take new stores, and says why a move is refused.
    client.force_login(staff_user)
    page = client.get(reverse("admin:stores_store_move", args=[store.pk])).content.decode()
    assert "other (" in page and "draining (" not in page and "small (" not in page and ">home (" not in page
    response = client.post(reverse("admin:stores_store_move", args=[store.pk]), {"host": draining.pk})
    assert "Select a valid choice" in response.content.decode()
    ProvisioningJob.objects.create(store=store, kind=ProvisioningJob.Kind.RESTART)
    response = client.post(reverse("admin:stores_store_move", args=[store.pk]), {"host": other.pk})
    assert "This store is busy: restart" in response.content.decode() and not StoreMove.objects.exists()
    # The store page offers the move for an active or suspended store, not for a failed one.
    suspended = store_in_status("suspended")
    Store.objects.filter(pk=suspended.pk).update(host=home, port=home.port_range_start + 3)
    for shown, offered in ((store, True), (suspended, True), (failed, False)):
        change = client.get(reverse("admin:stores_store_change", args=[shown.pk])).content.decode()
        assert ("Move to another host…" in change) is offered, shown.status

    # A move that is let through reserves the target's port: placement gives it to nobody else.
    ProvisioningJob.objects.filter(store=store).delete()
    move = store_move_request(store_id=store.pk, host_id=other.pk)
    assert (move.target_host, move.target_port, move.status) == (other, other.port_range_start, StoreMove.Status.QUEUED)
    from stores.selectors import host_ports_used

    assert host_ports_used(host=other) == [other.port_range_start]
