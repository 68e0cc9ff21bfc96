"""The steps of the `move` job kind: a live store copied to another host's engine, switched there in nginx,
and removed from its old host (provisioning/README.md, "Moving a store"; the records and services are
provisioning/moves.py).

    check → prepare → copy → start → final_sync → switch → remove → release
    (a step before the switch fails) → put_back: the target's objects removed, its place released, the
    store's app started again and routed on its own host (it never left it)

The store stays active and keeps answering through nginx except in the switch window (final_sync and switch,
while nginx shows the maintenance page), which is measured and recorded on the StoreMove.

A suspended store moves too (an evacuation must empty its host): nothing of it runs and nginx shows its
suspended page throughout. Its database is started on the source for the copy only; on the target its stack
is made and checked as for any store (backups and file restores read through its web container) while nginx
still shows the suspended page; nothing writes, so there is no final sync and no window; the switch rewrites
its page's vhost for the target and stops everything there; the removal takes the source's stack.

The database travels as a logical dump (`mariadb-dump --single-transaction`: a consistent snapshot without
locking the tables or stopping the server), written into the source database's data volume, streamed as
the engine's archive straight into the target's database volume, and imported there. A copy of the data
volume would need the source database stopped (a running InnoDB directory is not a consistent copy), so it
could not be the first, live copy, and the source would no longer be untouched if the move then failed.
The files (every volume but the database's) stream from a helper container mounting the volume on the
source engine into one mounting the new volume on the target (get_archive to put_archive, nothing on the
platform's disk); the final sync copies only what changed since (by ctime) and deletes what went.
"""

import http.client
import ssl
import time

from django.conf import settings
from django.utils import timezone

from provisioning import docker_client
from provisioning.exceptions import ProvisioningError
from provisioning.host_images import host_images_ensure
from provisioning.kinds import Log, Step
from provisioning.move_models import StoreMove
from provisioning.stacks import stack_for
from provisioning.stacks.base import DB_ROOT_CLIENT_ENV
from provisioning.steps import (
    _cache_empty,
    _services,
    _vhost,
    app_start,
    app_stop,
    containers_start,
    containers_stop,
    data_services_start,
    network_and_volumes,
    vhost_proxy,
    wait_db,
)
from stores.models import Host, Store

DUMP_DIR = "/var/lib/mysql"  # the database's data volume: the archive API writes into volumes only
DUMP_FILE = "shophosting-move.sql"
DUMP_ERRORS = "shophosting-move.err"
DUMP = [
    "bash",
    "-c",
    f"export {DB_ROOT_CLIENT_ENV}; cd {DUMP_DIR}; "
    f'mariadb-dump --single-transaction --quick --routines --triggers --events -uroot "$MARIADB_DATABASE" '
    f"> {DUMP_FILE} 2> {DUMP_ERRORS}",
]
IMPORT = [
    "bash",
    "-c",
    f"set -e; export {DB_ROOT_CLIENT_ENV}; cd {DUMP_DIR}; exec 2> {DUMP_ERRORS}; "
    'mariadb -uroot -e "DROP DATABASE IF EXISTS \\`$MARIADB_DATABASE\\`; CREATE DATABASE \\`$MARIADB_DATABASE\\`"; '
    f'mariadb -uroot "$MARIADB_DATABASE" < {DUMP_FILE}; rm -f {DUMP_FILE} {DUMP_ERRORS}',
]
DUMP_REMOVE = ["rm", "-f", f"{DUMP_DIR}/{DUMP_FILE}", f"{DUMP_DIR}/{DUMP_ERRORS}"]
HELPER_ROOT = "/move"  # where a helper container mounts each volume: /move/<suffix>
CLOCK_SLACK_SECONDS = 2  # the final sync copies what changed from a little before the first copy began
PATHS_PER_CALL = 500


def _move(job_id: int) -> StoreMove:
    return StoreMove.objects.select_related("source_host", "target_host").get(job_id=job_id)


def store_at(store: Store, host: Host, port: int) -> Store:
    """The store as it is, placed at (`host`, `port`): what the provisioning steps need to build or run its
    stack on another engine (a fresh instance; the row is not changed)."""
    view = Store.objects.select_related("plan", "customer").get(pk=store.pk)
    view.host, view.port = host, port
    return view


def _source(store: Store, move: StoreMove) -> Store:
    return store_at(store, move.source_host, move.source_port)


def _target(store: Store, move: StoreMove) -> Store:
    return store_at(store, move.target_host, move.target_port)


def _suspended(store: Store) -> bool:
    """Nothing of a suspended store runs, and nginx shows its suspended page whatever the move does."""
    return store.status == Store.Status.SUSPENDED


def _file_volumes(store: Store) -> dict[str, str]:
    """volume suffix -> image of a service that mounts it, for every volume but the database's."""
    volumes = {}
    for service in _services(store):
        if service.role == "db":
            continue
        for suffix in service.volumes:
            volumes.setdefault(suffix, service.image)
    return volumes


# --- Steps --------------------------------------------------------------------------------------------------


def move_check(store: Store, log: Log, *, job_id: int) -> None:
    """The target's engine answers and holds every image the store runs: those it lacks are copied to it from
    the platform's engine first, as for a new store (host_images.host_images_ensure; nothing is pulled), so an
    evacuation to a new host does not fail for images. An image the platform's engine lacks too fails here,
    before anything of the store is made on the target."""
    move = _move(job_id)
    target = _target(store, move)
    info = docker_client.engine_info(base_url=target.host.engine)
    log(f"target {move.target_host.name} (Docker {info.server_version}) answers; port {move.target_port} reserved")
    host_images_ensure(host=target.host, images=[service.image for service in _services(target)], log=log)
    log("the target has every image the store runs")


def move_prepare(store: Store, log: Log, *, job_id: int) -> None:
    """The store's network and volumes on the target, empty: what an earlier attempt left there (one whose
    worker died, so its put_back never ran) is removed first. Before the switch nothing of the store on the
    target serves anyone."""
    move = _move(job_id)
    target = _target(store, move)
    left = docker_client.labelled_objects_remove(
        label=f"shophosting.store={store.object_key}", base_url=target.host.engine
    )
    if any(left.values()):
        log(f"removed what an earlier attempt left on {move.target_host.name}: {left}")
    network_and_volumes(target, log)


def _database_copy(source: Store, target: Store, log: Log) -> int:
    """The source's database, dumped consistently while it serves, into the target's (replaced whole)."""
    source_db, target_db = stack_for(source).container_name("db"), stack_for(target).container_name("db")
    started = time.monotonic()
    code = docker_client.container_exec_wait(name=source_db, command=DUMP, base_url=source.host.engine)
    if code != 0:
        _, errors = docker_client.container_exec(
            name=source_db, command=["cat", f"{DUMP_DIR}/{DUMP_ERRORS}"], base_url=source.host.engine
        )
        docker_client.container_exec(name=source_db, command=DUMP_REMOVE, base_url=source.host.engine)
        raise ProvisioningError(f"the database dump failed (exit {code}): {errors.strip()[-1000:]}")
    dumped = time.monotonic()
    try:
        size = docker_client.archive_copy(
            source_container=source_db,
            source_path=f"{DUMP_DIR}/{DUMP_FILE}",
            source_engine=source.host.engine,
            target_container=target_db,
            target_path=DUMP_DIR,
            target_engine=target.host.engine,
        )
    finally:
        docker_client.container_exec(name=source_db, command=DUMP_REMOVE, base_url=source.host.engine)
    copied = time.monotonic()
    code = docker_client.container_exec_wait(name=target_db, command=IMPORT, base_url=target.host.engine)
    if code != 0:
        _, errors = docker_client.container_exec(
            name=target_db, command=["cat", f"{DUMP_DIR}/{DUMP_ERRORS}"], base_url=target.host.engine
        )
        raise ProvisioningError(f"the database does not import on the target (exit {code}): {errors.strip()[-1000:]}")
    log(
        f"database: {size / 1e6:.1f} MB dumped in {dumped - started:.1f} s, streamed in {copied - dumped:.1f} s, "
        f"imported in {time.monotonic() - copied:.1f} s"
    )
    return size


def _helper(store: Store, suffix: str, image: str) -> str:
    stack = stack_for(store)
    return docker_client.volume_helper_start(
        name=f"{stack.volume_name(suffix)}-move",
        image=image,
        volumes={stack.volume_name(suffix): f"{HELPER_ROOT}/{suffix}"},
        labels={**stack.labels, "shophosting.role": "move-helper"},
        base_url=store.host.engine,
    )


def _entries(store: Store, helper: str, suffix: str, *, changed_since: int | None = None) -> list[str]:
    """The paths under a helper's volume (relative to it), parents before children; with `changed_since`
    (epoch seconds), only those whose inode changed since (new, written, renamed, chmod-ed)."""
    command = ["find", f"{HELPER_ROOT}/{suffix}", "-mindepth", "1"]
    if changed_since is not None:
        command += ["-newerct", f"@{changed_since}"]
    code, output = docker_client.container_exec(
        name=helper, command=[*command, "-printf", "%P\\0"], base_url=store.host.engine
    )
    if code != 0:
        raise ProvisioningError(f"listing the files of {suffix} failed: {output.strip()[-500:]}")
    return [path for path in output.split("\0") if path]


def _files_copy(source: Store, target: Store, move: StoreMove, log: Log, *, final: bool) -> int:
    """Every file volume from the source into the target's: whole the first time (the source's clock noted
    first), then only what changed since and what was deleted."""
    total = 0
    for suffix, image in _file_volumes(source).items():
        source_helper = _helper(source, suffix, image)
        try:
            target_helper = _helper(target, suffix, image)
            try:
                if not final:
                    _, clock = docker_client.container_exec(
                        name=source_helper, command=["date", "+%s"], base_url=source.host.engine
                    )
                    StoreMove.objects.filter(pk=move.pk).update(files_copied_at=int(clock.strip()))
                    size = docker_client.archive_copy(
                        source_container=source_helper,
                        source_path=f"{HELPER_ROOT}/{suffix}",
                        source_engine=source.host.engine,
                        target_container=target_helper,
                        target_path=HELPER_ROOT,
                        target_engine=target.host.engine,
                    )
                    log(f"{suffix}: {size / 1e6:.1f} MB copied")
                else:
                    since = StoreMove.objects.get(pk=move.pk).files_copied_at - CLOCK_SLACK_SECONDS
                    changed = _entries(source, source_helper, suffix, changed_since=since)
                    size = 0
                    for start in range(0, len(changed), PATHS_PER_CALL):
                        size += docker_client.tar_copy(
                            source_container=source_helper,
                            source_dir=f"{HELPER_ROOT}/{suffix}",
                            paths=changed[start : start + PATHS_PER_CALL],
                            source_engine=source.host.engine,
                            target_container=target_helper,
                            target_dir=f"{HELPER_ROOT}/{suffix}",
                            target_engine=target.host.engine,
                        )
                    gone = sorted(
                        set(_entries(target, target_helper, suffix)) - set(_entries(source, source_helper, suffix))
                    )
                    for start in range(0, len(gone), PATHS_PER_CALL):
                        paths = [f"{HELPER_ROOT}/{suffix}/{path}" for path in gone[start : start + PATHS_PER_CALL]]
                        code, output = docker_client.container_exec(
                            name=target_helper, command=["rm", "-rf", "--", *paths], base_url=target.host.engine
                        )
                        if code != 0:
                            raise ProvisioningError(f"removing deleted files on the target failed: {output[-500:]}")
                    log(f"{suffix}: {len(changed)} changed entries ({size / 1e6:.1f} MB) copied, {len(gone)} removed")
                total += size
            finally:
                docker_client.container_remove(name=target_helper, base_url=target.host.engine)
        finally:
            docker_client.container_remove(name=source_helper, base_url=source.host.engine)
    return total


def move_copy(store: Store, log: Log, *, job_id: int) -> None:
    """The first copy, while the store serves: the target's database and cache started, the database dumped
    into it, the files streamed into its volumes."""
    from provisioning.moves import move_copied

    move = _move(job_id)
    source, target = _source(store, move), _target(store, move)
    started = time.monotonic()
    if _suspended(store):  # its database is stopped: started for the dump (the put-back or removal stops it)
        data_services_start(source, log)
        wait_db(source, log, timeout=settings.STORE_WEB_READY_TIMEOUT)
        log("suspended: its database started on the source for the copy")
    data_services_start(target, log)
    wait_db(target, log, timeout=settings.STORE_WEB_READY_TIMEOUT)
    database_bytes = _database_copy(source, target, log)
    files_bytes = _files_copy(source, target, move, log, final=False)
    move_copied(
        move_id=move.pk, database_bytes=database_bytes, files_bytes=files_bytes, seconds=time.monotonic() - started
    )


def move_start(store: Store, log: Log, *, job_id: int) -> None:
    """The store's web server on the target, answering on the target's private address for the store's name
    (nginx still routes to the source)."""
    move = _move(job_id)
    if _suspended(store):  # made and checked like any store's (backups read the files through it); the
        # switch stops it again
        log("suspended: its web server is made and checked on the target; nginx shows its suspended page")
    app_start(_target(store, move), log)


def move_final_sync(store: Store, log: Log, *, job_id: int) -> None:
    """The switch window opens: nginx shows the maintenance page, the source's web server stops (nothing
    writes any more), and what changed since the first copy follows: the database whole, the files changed
    or deleted since."""
    from provisioning.moves import move_downtime_start

    move = _move(job_id)
    if _suspended(store):
        log("suspended: nothing has written since the copy (its web server never ran), so there is no window")
        return
    source, target = _source(store, move), _target(store, move)
    move_downtime_start(move_id=move.pk)
    _vhost(source, log, mode="maintenance")
    app_stop(source, log)
    _database_copy(source, target, log)
    _files_copy(source, target, move, log, final=True)
    _cache_empty(target, log)  # the target's app answered checks before the final data arrived


def _routed_check(store: Store, log: Log) -> None:
    """nginx answers the store's front page from its new upstream (not the maintenance page, not a gateway
    error). Over HTTPS when the store has its certificate (its HTTP only redirects there); the certificate
    is not what is checked here (this is our own nginx), so it is not verified."""
    if not settings.NGINX_ENABLED:
        return
    if store.tls_status == Store.TLS.ISSUED:
        host, _, port = settings.NGINX_LISTEN_HTTPS.rpartition(":")
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        connection = _SNIConnection(host or "127.0.0.1", int(port), server_name=store.domain, context=context)
    else:
        host, _, port = settings.NGINX_LISTEN_HTTP.rpartition(":")
        connection = http.client.HTTPConnection(host or "127.0.0.1", int(port), timeout=10)
    try:
        connection.request("GET", "/", headers={"Host": store.domain, "Connection": "close"})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        raise ProvisioningError(f"nginx did not answer for {store.domain} after the switch: {exc}") from exc
    finally:
        connection.close()
    if status >= 500:
        raise ProvisioningError(f"nginx answers {store.domain} with HTTP {status} after the switch")
    log(f"nginx routes {store.domain} to the target: HTTP {status}")


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to an address, with the store's name in SNI (nginx picks the store's server by it)."""

    def __init__(self, host: str, port: int, *, server_name: str, context: ssl.SSLContext):
        super().__init__(host, port, timeout=10, context=context)
        self.server_name = server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)


def move_switch(store: Store, log: Log, *, job_id: int) -> None:
    """nginx proxies the store to the target; then the store's place is the target's (the source's held until
    its old stack is removed) and the switch window closes."""
    from provisioning.moves import move_switched

    move = _move(job_id)
    target = _target(store, move)
    if _suspended(store):
        _vhost(target, log, mode="maintenance")  # its suspended page, now written for the target
        containers_stop(target, log)  # made and checked for the move; nothing of it runs while suspended
        move = move_switched(move_id=move.pk)
        log(f"the store is placed on {move.target_host.name} now, still suspended")
        return
    if settings.NGINX_ENABLED:
        _vhost(target, log, mode="proxy")
        _routed_check(target, log)
    move = move_switched(move_id=move.pk)
    log(f"the store runs on {move.target_host.name} now; it was unavailable for {move.downtime_seconds:.1f} s")


def move_remove(store: Store, log: Log, *, job_id: int) -> None:
    """The old stack goes from the source's engine: containers, networks and volumes, by the store's label."""
    move = _move(job_id)
    removed = docker_client.labelled_objects_remove(
        label=f"shophosting.store={store.object_key}", base_url=move.source_host.engine
    )
    for kind, names in removed.items():
        log(f"removed {len(names)} {kind} from {move.source_host.name}")


def move_release(store: Store, log: Log, *, job_id: int) -> None:
    from stores.moves import store_move_release

    move = _move(job_id)
    store_move_release(store_id=store.pk)
    log(f"port {move.source_port} of {move.source_host.name} released")


def move_put_back(store: Store, log: Log, *, job_id: int) -> None:
    """A step failed. Before the switch: the target's objects go, its place is released, and the store's app
    runs and is routed on its own host again (only what the move got to is undone; the source's data was
    never changed). After it the store runs on the target: nothing is put back, and a retry removes the old
    stack."""
    from provisioning.moves import move_downtime_end
    from stores.moves import store_move_release

    move = _move(job_id)
    # Switched: in the worker, before the job is failed; failed_after_switch: an undo job after a reap.
    if move.status in (StoreMove.Status.SWITCHED, StoreMove.Status.FAILED_AFTER_SWITCH) or (
        store.host_id == move.target_host_id
    ):
        log(f"the store runs on {move.target_host.name} already; the old stack is left for a retry to remove")
        return
    source, target = _source(store, move), _target(store, move)
    for suffix in _file_volumes(source):
        if docker_client.container_remove(
            name=f"{stack_for(source).volume_name(suffix)}-move", base_url=source.host.engine
        ):
            log(f"helper container of {suffix} removed from {move.source_host.name}")
    db = stack_for(source).container_name("db")
    if docker_client.container_state(name=db, base_url=source.host.engine)[0] == "running":
        docker_client.container_exec(name=db, command=DUMP_REMOVE, base_url=source.host.engine)
    removed = docker_client.labelled_objects_remove(
        label=f"shophosting.store={store.object_key}", base_url=target.host.engine
    )
    log(f"removed from {move.target_host.name}: " + ", ".join(f"{len(v)} {k}" for k, v in removed.items()))
    store_move_release(store_id=store.pk)
    log(f"port {move.target_port} of {move.target_host.name} released")
    if _suspended(store):
        containers_stop(source, log)  # the database the copy started
        log("suspended: it stays on its own host, stopped")
    elif move.downtime_started_at is not None:  # the final sync had begun: the app was stopped, nginx paused
        containers_start(source, log)
        vhost_proxy(source, log)
        move_downtime_end(move_id=move.pk, at=timezone.now())
        log("the store answers on its own host again")
    else:
        log("the store was never paused; it kept answering on its own host")


MOVE_STEPS = (
    Step("check", "Check the target host", move_check, with_job=True),
    Step("prepare", "Create the network and volumes on the target", move_prepare, with_job=True),
    Step("copy", "Copy the database and files while the store runs", move_copy, with_job=True),
    Step("start", "Start the store on the target and check it answers", move_start, with_job=True),
    Step("final_sync", "Pause the store and copy what changed", move_final_sync, with_job=True),
    Step("switch", "Route the store to the target", move_switch, with_job=True),
    Step("remove", "Remove the old containers, network and volumes", move_remove, with_job=True),
    Step("release", "Release the old port", move_release, with_job=True),
)
PUT_BACK = Step("put_back", "Leave the store where it was", move_put_back, with_job=True)
