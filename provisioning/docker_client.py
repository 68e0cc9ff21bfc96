"""The only module that imports the Docker SDK. Callers get dataclasses and project exceptions.

The engine is `settings.DOCKER_HOST` (unix://, ssh:// or tcp://). Every published port binds to an
explicit address (127.0.0.1 by default), never to all interfaces.
"""

from dataclasses import dataclass
from functools import lru_cache

import docker
import docker.errors
import requests.exceptions
from django.conf import settings

from provisioning.exceptions import DockerUnavailable, ProvisioningError

__all__ = ["DockerUnavailable", "ProvisioningError", "EngineInfo", "ContainerInfo"]


@dataclass(frozen=True)
class EngineInfo:
    server_version: str
    api_version: str
    memory_bytes: int
    cpus: int


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    status: str
    image: str
    memory_limit_bytes: int
    nano_cpus: int
    labels: dict[str, str]


@lru_cache(maxsize=8)
def _client(base_url: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=base_url, timeout=settings.DOCKER_TIMEOUT)


def client(base_url: str | None = None) -> docker.DockerClient:
    return _client(base_url or settings.DOCKER_HOST)


def engine_info(*, base_url: str | None = None) -> EngineInfo:
    try:
        docker_client = client(base_url)
        info = docker_client.info()
        version = docker_client.version()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise DockerUnavailable(f"Docker engine at {base_url or settings.DOCKER_HOST} does not answer: {exc}") from exc
    return EngineInfo(
        server_version=version.get("Version", ""),
        api_version=version.get("ApiVersion", ""),
        memory_bytes=info.get("MemTotal", 0),
        cpus=info.get("NCPU", 0),
    )


def _container_info(container) -> ContainerInfo:
    attrs = container.attrs
    host_config = attrs.get("HostConfig", {})
    return ContainerInfo(
        id=container.id,
        name=container.name,
        status=attrs.get("State", {}).get("Status", container.status),
        image=attrs.get("Config", {}).get("Image", ""),
        memory_limit_bytes=host_config.get("Memory", 0),
        nano_cpus=host_config.get("NanoCpus", 0),
        labels=attrs.get("Config", {}).get("Labels") or {},
    )


def container_run(
    *,
    name: str,
    image: str,
    command: list[str] | None = None,
    memory_bytes: int,
    cpus: float,
    labels: dict[str, str],
    environment: dict[str, str] | None = None,
    base_url: str | None = None,
) -> ContainerInfo:
    """Start a detached container with hard memory and CPU limits (swap capped at the memory limit).

    create + start rather than the SDK's `containers.run`, which pulls a missing image from a registry:
    images are built locally, and no registry may be contacted."""
    try:
        container = client(base_url).containers.create(
            image,
            command=command,
            name=name,
            labels=labels,
            environment=environment or {},
            mem_limit=memory_bytes,
            memswap_limit=memory_bytes,
            nano_cpus=int(cpus * 1_000_000_000),
        )
        container.start()
        container.reload()
    except docker.errors.ImageNotFound as exc:
        raise ProvisioningError(f"image {image} is not on the engine; build it with deploy/images/") from exc
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not start container {name}: {exc.explanation or exc}") from exc
    except (requests.exceptions.RequestException, OSError) as exc:
        raise DockerUnavailable(str(exc)) from exc
    return _container_info(container)


def container_get(*, name: str, base_url: str | None = None) -> ContainerInfo | None:
    try:
        return _container_info(client(base_url).containers.get(name))
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise ProvisioningError(str(exc)) from exc


def container_remove(*, name: str, base_url: str | None = None) -> bool:
    """Force-remove a container and its anonymous volumes; False when it did not exist."""
    try:
        client(base_url).containers.get(name).remove(force=True, v=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not remove container {name}: {exc.explanation or exc}") from exc
    return True


def image_exists(*, tag: str, base_url: str | None = None) -> bool:
    try:
        client(base_url).images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True
