"""Hosts as engines the platform can use: the check run when staff register a host (and again on demand).

The check asks the engine what it is (version, storage driver, whether cgroups let it enforce memory, CPU
and process limits, its memory and CPUs), copies the probe image to it if it lacks it (the platform's own
engine holds every store image: images move to hosts through the Docker API, never from a registry), and
starts a throwaway Redis there with its port published on the host's private address. The engine refuses
that address unless it is the host's own; the platform then connects to it and expects Redis's PONG: the
address nginx will proxy to answers from here. The same container reports the free disk of the engine's
data root. Any failure raises HostCheckFailed saying which part, and nothing is saved.
"""

import socket
import time
import uuid

from django.conf import settings
from django.utils import timezone

from provisioning import docker_client
from provisioning.exceptions import HostCheckFailed, ProvisioningError
from stores.models import Engine

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
    limits = f"{facts.cgroup_driver} v{facts.cgroup_version}: memory, CPU and process limits"
    report = (
        f"Docker {facts.server_version} (API {facts.api_version}), {facts.storage_driver}, {limits}; "
        f"{facts.memory_bytes >> 20} MB memory, {facts.cpus} CPUs; "
        f"{probe.disk_free_bytes / 1e9:.1f} of {probe.disk_total_bytes / 1e9:.1f} GB free on the data root; "
        f"{bind_address} answers from the platform"
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
    return copied
