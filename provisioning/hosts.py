"""Hosts as engines the platform can use: the check run when staff register a host (and again on demand).

The check asks the engine what it is (version, storage driver, whether cgroups let it enforce memory, CPU
and process limits, its memory and CPUs), copies the probe image to it if it lacks it (the platform's own
engine holds every store image: images move to hosts through the Docker API, never from a registry), and
starts a throwaway Redis there with its port published on the host's private address. The engine refuses
that address unless it is the host's own; the platform then connects to it and expects Redis's PONG: the
address nginx will proxy to answers from here. The same container reports the free disk of the engine's
data root. With EGRESS_MANAGED, the check then applies the stores' outbound fence on the host through its
engine (provisioning/egress.py): a host that cannot be fenced is not registered. Any failure raises
HostCheckFailed saying which part, and nothing is saved.

`hosts_fence_check` (a periodic job) looks for drift of that fence on every host and records it as the
platform check `egress.host-<id>`, so a host whose rules were flushed (a firewall reload) opens a staff incident.
"""

import logging
import socket
import time
import uuid

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning import docker_client, egress, jobs
from provisioning.care.models import Incident, PlatformCheck
from provisioning.care.platform import platform_check_record
from provisioning.exceptions import HostCheckFailed, ProvisioningError
from provisioning.host_images import host_images_refresh
from provisioning.lost_hosts import stale_stacks_remove
from provisioning.models import StaleStack
from provisioning.stacks import stack_for
from stores.exceptions import InvalidTransition
from stores.models import Engine, Host, Store
from stores.services import host_check_failure_record, host_check_record, store_transition

logger = logging.getLogger(__name__)
PROBE_PORT = 6379


def _probe_image() -> str:
    return settings.STORE_IMAGES["woocommerce"]["cache"]


def _pong(address: str, port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | str = "no answer"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=2) as connection:
                connection.sendall(b"PING\r\n")
                answer = connection.recv(64)
            if answer.startswith(b"+PONG"):
                return
            last = f"it answered {answer[:40]!r}"
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise HostCheckFailed(
        f"the private address {address} does not answer from the platform on the probe's port {port} ({last}): "
        "nginx could not reach this host's stores there; check the private network and the host's firewall"
    )


def host_check(*, engine: Engine, bind_address: str) -> dict:
    """Check the engine and the private address; the Host fields to record (stores.services.HOST_CHECK_FIELDS)."""
    where = engine.url
    try:
        facts = docker_client.engine_facts(base_url=engine)
    except ProvisioningError as exc:
        raise HostCheckFailed(f"the engine at {where} cannot be used: {exc}") from exc
    missing = [
        what
        for what, present in (("memory", facts.memory_limit), ("CPU", facts.cpu_limit), ("process", facts.pids_limit))
        if not present
    ]
    if missing:
        raise HostCheckFailed(
            f"the engine at {where} cannot enforce {', '.join(missing)} limits (cgroup {facts.cgroup_driver} "
            f"v{facts.cgroup_version}); every store runs with limits, so it cannot take stores"
        )
    image = _probe_image()
    name = f"{settings.STORE_OBJECT_PREFIX}-host-check-{uuid.uuid4().hex[:8]}"
    labels = {"shophosting.env": settings.STORE_OBJECT_PREFIX, "shophosting.host-check": "1"}
    try:
        docker_client.image_copy(image=image, source=None, target=engine)
        probe = docker_client.probe_start(
            name=name,
            image=image,
            command=["redis-server", "--port", str(PROBE_PORT), "--save", "", "--protected-mode", "no"],
            container_port=PROBE_PORT,
            address=bind_address,
            labels=labels,
            base_url=engine,
        )
        _pong(bind_address, probe.port)
    except HostCheckFailed:
        raise
    except ProvisioningError as exc:
        raise HostCheckFailed(f"the probe on {where} with its port on {bind_address} failed: {exc}") from exc
    finally:
        try:
            docker_client.container_remove(name=name, base_url=engine)
        except ProvisioningError:
            pass  # the check's verdict stands; a leftover probe carries its label
    fence = ""
    if settings.EGRESS_MANAGED:
        try:
            fence = f"; the stores' outbound fence is in place ({len(egress.host_fence_apply(engine))} rules)"
        except ProvisioningError as exc:
            raise HostCheckFailed(f"the stores' outbound fence could not be applied on {where}: {exc}") from exc
    limits = f"{facts.cgroup_driver} v{facts.cgroup_version}: memory, CPU and process limits"
    report = (
        f"Docker {facts.server_version} (API {facts.api_version}), {facts.storage_driver}, {limits}; "
        f"{facts.memory_bytes >> 20} MB memory, {facts.cpus} CPUs; "
        f"{probe.disk_free_bytes / 1e9:.1f} of {probe.disk_total_bytes / 1e9:.1f} GB free on the data root; "
        f"{bind_address} answers from the platform{fence}"
    )
    if facts.warnings:
        report += "; the engine warns: " + " | ".join(facts.warnings)
    return {
        "checked_at": timezone.now(),
        "engine_version": facts.server_version[:40],
        "storage_driver": facts.storage_driver[:40],
        "cgroup_limits": limits[:100],
        "memory_total_mb": facts.memory_bytes >> 20,
        "cpus_total": facts.cpus,
        "disk_free_bytes": probe.disk_free_bytes,
        "disk_total_bytes": probe.disk_total_bytes,
        "check_report": report,
    }


def hosts_fence_check() -> list[PlatformCheck]:
    """Compare each host's fence with the settings (through a helper container on its engine), put a fence
    that differs back in place, and record it as the platform check `egress.host-<id>`: drift (even repaired:
    staff learn that a host lost its rules, e.g. by a reboot, since iptables rules do not survive one), or an
    engine that cannot be asked, fails it; the next look passes once the fence holds. Nothing is checked
    when the fence is unmanaged. Every ten minutes (shophosting/cron.py)."""
    if not settings.EGRESS_MANAGED:
        return []
    recorded = []
    for host in Host.objects.order_by("name"):
        started = time.monotonic()
        try:
            problems = egress.host_fence_drift(host.engine)
        except ProvisioningError as exc:
            problems, repaired = [f"could not be checked: {exc}"], None
        else:
            repaired = _fence_put_back(host) if problems else None
        output = "" if not problems else f"host {host.name}: the outbound fence differs: " + "; ".join(problems)
        if repaired:
            output += f" — {repaired}"
        recorded.append(
            platform_check_record(
                component=f"egress.host-{host.pk}",
                ok=not problems,
                output=output,
                duration_ms=round((time.monotonic() - started) * 1000),
            )
        )
    return recorded


def _fence_put_back(host: Host) -> str:
    """Apply the fence again on a host whose rules differ; what happened, in words for the platform check."""
    try:
        egress.host_fence_apply(host.engine)
    except ProvisioningError as exc:
        logger.error("host %s: the outbound fence could not be put back: %s", host.name, exc)
        return f"putting it back failed: {exc}"
    logger.warning("host %s: the outbound fence differed and was put back in place", host.name)
    return "put back in place"


def host_check_run(*, host_id: int) -> bool:
    """Run the check again on a saved host, in a worker (the admin's "Run the host check again" queues it:
    the web tier has no docker group for a unix:// engine, and an engine may take a while), and record the
    outcome on the host: what it found and the images its engine holds, or why it failed."""
    host = Host.objects.get(pk=host_id)
    try:
        check = host_check(engine=host.engine, bind_address=host.bind_address)
    except HostCheckFailed as exc:
        host_check_failure_record(host_id=host.pk, error=str(exc), at=timezone.now())
        return False
    host_check_record(host_id=host.pk, check=check)
    try:
        host_images_refresh(host=host)
    except ProvisioningError as exc:  # the check passed; the platform round records the images
        logger.warning("host %s: its images were not recorded after the check: %s", host.name, exc)
    return True


def host_check_enqueue(*, host_id: int) -> None:
    """Queue the check of a saved host for a worker (default queue)."""
    django_rq.get_queue("default").enqueue(
        jobs.host_check_run, host_id, job_id=f"host-check-{host_id}-{uuid.uuid4().hex[:8]}"
    )


def host_images_copy(*, host, dry_run: bool = False, log=print) -> list[str]:
    """Give the host's engine every store image the platform's engine has (settings.STORE_IMAGES), through
    the Docker API, skipping those it already has (same id). The images a host runs are the platform's:
    build or load them on the platform's engine (manage.py images_build), then copy them to each host.
    Returns the images copied (or that would be, with dry_run)."""
    wanted = sorted({image for roles in settings.STORE_IMAGES.values() for image in roles.values()})
    copied = []
    for image in wanted:
        source_id = docker_client.image_id(tag=image)
        if source_id is None:
            log(f"{image}: not on the platform's engine, skipped")
            continue
        if docker_client.image_id(tag=image, base_url=host.engine) == source_id:
            log(f"{image}: already on {host.name}")
            continue
        if not dry_run:
            docker_client.image_copy(image=image, source=None, target=host.engine)
        log(f"{image}: {'would copy' if dry_run else 'copied'} to {host.name}")
        copied.append(image)
    if not dry_run:
        log(f"recorded {host_images_refresh(host=host)} store image(s) of {host.name}")
    return copied


UNREACHABLE_MESSAGE = (
    "The server your store runs on is not answering, so your store is offline. Our team has been alerted and "
    "is on it; your data is safe and there is nothing you need to do."
)
BACK_MESSAGE = "The server your store runs on answers again, and your store is back online."


def host_heartbeat(*, host_id: int, ok: bool) -> list[tuple[int, str]]:
    """React to one look at a host's engine (the platform round, every minute, after it recorded
    `docker.host-<id>`). While the host's platform incident is open (CARE_INCIDENT_THRESHOLD failing looks
    in a row), its active stores are marked unreachable, with a plain message for their merchants: not
    failed, since nothing of theirs broke and nothing is to be retried. Once the engine answers again, each
    unreachable store whose web container runs (the engine restarts them itself) is active again; one
    whose container does not run stays unreachable, and the log says so. Before that, the old stacks of
    stores restored on another host meanwhile are removed from it (lost_hosts.stale_stacks_remove).
    Returns (store id, new status) for the stores it moved."""
    host = Host.objects.get(pk=host_id)
    moved = []
    if not ok:
        if not Incident.objects.filter(open_for_component=f"docker.host-{host_id}").exists():
            return moved  # not yet CARE_INCIDENT_THRESHOLD failures in a row: a blip marks nothing
        for store_id in Store.objects.filter(host=host, status=Store.Status.ACTIVE).values_list("pk", flat=True):
            try:
                store_transition(
                    store_id=store_id,
                    to=Store.Status.UNREACHABLE,
                    note=f"host {host.name}: its engine does not answer",
                    message=UNREACHABLE_MESSAGE,
                )
            except InvalidTransition:
                continue  # it changed meanwhile (a suspend, a delete): left as it is
            moved.append((store_id, Store.Status.UNREACHABLE))
        return moved
    # First what stores restored elsewhere meanwhile left here: their old stacks must not run or be served.
    stale_stacks_remove(host=host)
    for store in Store.objects.filter(host=host, status=Store.Status.UNREACHABLE).select_related("plan"):
        try:
            state, _ = docker_client.container_state(name=stack_for(store).container_name("web"), base_url=host.engine)
        except ProvisioningError:
            continue  # the engine went again: the next round looks
        if state != "running":
            logger.warning("store %s on host %s: web container %s, left unreachable", store.pk, host.name, state)
            continue
        if _store_back(store_id=store.pk, host=host):
            moved.append((store.pk, Store.Status.ACTIVE))
    return moved


@transaction.atomic
def _store_back(*, store_id: int, host: Host) -> bool:
    """Active again, under the store's row lock, only if it is still this host's unreachable store and went
    unreachable here: a restore elsewhere (lost_hosts.store_rehome, under the same lock) may have placed it on
    another host meanwhile, or on this one, where it is unreachable until that restore ends (while its job
    runs, or after it failed and waits for its retry), whatever of it already runs here. A restore queued but
    not yet placed loses the race: the store is back where its newest data is, and that job stops."""
    store = Store.objects.select_for_update().get(pk=store_id)
    if store.host_id != host.pk or store.status != Store.Status.UNREACHABLE:
        return False
    went = store.events.filter(new_status=Store.Status.UNREACHABLE).order_by("-created_at", "-pk").first()
    if went is not None and StaleStack.objects.filter(store=store, created_at__gte=went.created_at).exists():
        return False
    try:
        store_transition(
            store_id=store.pk, to=Store.Status.ACTIVE, note=f"host {host.name} answers again", message=BACK_MESSAGE
        )
    except InvalidTransition:
        return False
    return True
