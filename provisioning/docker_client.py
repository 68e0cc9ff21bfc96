"""The only module that imports the Docker SDK. Callers get dataclasses and project exceptions.

Every function takes `base_url`: the engine to talk to, either a URL (unix://, ssh:// or tcp://; None is
`settings.DOCKER_HOST`, the platform's own engine) or a `stores.models.Engine`, which a `Host` gives
(`host.engine`) with the TLS client certificates of a remote engine, or the SSH key and pinned host key of an
ssh:// one (`_ssh_client`: OpenSSH runs `docker system dial-stdio` on the host, as the docker CLI does).
Every published port binds to an explicit address (the host's private address, 127.0.0.1 on a single
machine), never to all interfaces.
"""

import functools
import hashlib
import io
import os
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import docker
import docker.errors
import docker.tls
import docker.transport.basehttpadapter
import requests.adapters
import requests.exceptions
import urllib3
import urllib3.connection
import urllib3.connectionpool
from django.conf import settings

from provisioning.exceptions import DockerUnavailable, ProvisioningError
from stores.models import Engine

__all__ = ["DockerUnavailable", "ProvisioningError", "EngineInfo", "ContainerInfo", "NetworkInfo"]


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


@contextmanager
def _starting(name: str, image: str):
    """Translate the SDK's errors while creating and starting a container into the project's."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ProvisioningError(f"image {image} is not on the engine; build it with manage.py images_build") from exc
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not start container {name}: {exc.explanation or exc}") from exc


# What a call meets when the engine is not there to answer (stopped, restarting, its socket gone) or cuts a
# stream off. The engine's own refusals are APIError (an HTTPError, so not among these).
_TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionError,
)


EngineRef = str | Engine | None


def engine_url(base_url: EngineRef) -> str:
    """The URL of the engine `base_url` names (never its certificates)."""
    if isinstance(base_url, Engine):
        return base_url.url
    return base_url or settings.DOCKER_HOST


def _unavailable(exc: BaseException, base_url: EngineRef) -> DockerUnavailable:
    said = _ssh_errors.pop(engine_url(base_url), "")  # an ssh:// engine: why ssh gave up, if it said
    return DockerUnavailable(f"the Docker engine at {engine_url(base_url)} does not answer: {said or exc}")


def _engine_call(function):
    """For every function that calls the engine: an engine that does not answer is DockerUnavailable, naming
    the engine, instead of a transport error that names neither Docker nor the engine."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except _TRANSPORT_ERRORS as exc:
            raise _unavailable(exc, kwargs.get("base_url")) from exc

    return call


def _private_files(engine: Engine, files: dict[str, str]) -> dict[str, str]:
    """The SDK (and the ssl module under it) and OpenSSH read keys from files, at every new connection: write
    the engine's into a directory only this user can read, named by a hash of their content, kept for the
    life of the process (a key changed in the admin is a new engine, so a new directory). File name -> path."""
    digest = hashlib.sha256("\0".join((engine.url, *files, *files.values())).encode()).hexdigest()[:16]
    directory = os.path.join(tempfile.gettempdir(), f"shophosting-docker-tls-{os.getuid()}", digest)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(os.path.dirname(directory), 0o700)
    paths = {}
    for file_name, text in files.items():
        path = os.path.join(directory, file_name)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
        paths[file_name] = path
    return paths


def _tls_files(engine: Engine) -> tuple[str, str, str]:
    paths = _private_files(engine, {"ca.pem": engine.ca_pem, "cert.pem": engine.cert_pem, "key.pem": engine.key_pem})
    return paths["ca.pem"], paths["cert.pem"], paths["key.pem"]


# --- ssh:// engines --------------------------------------------------------------------------------------
# The SDK's own ssh transport imports paramiko even when told to shell out to `ssh` (use_ssh_client=True), and
# its `ssh` command line takes no key, known_hosts or options: every engine would share the worker's
# ~/.ssh. So the platform runs OpenSSH itself, per connection, with the host's own key and pinned host key
# and nothing from ~/.ssh or /etc/ssh (-F /dev/null), and hands the SDK one end of a socket pair whose
# other end is ssh's stdin and stdout: `docker system dial-stdio` on the host joins it to the engine's
# socket (the remote user's DOCKER_HOST, /var/run/docker.sock by default), as `docker -H ssh://` does.
SSH_CONNECT_TIMEOUT = 10


def _ssh_argv(engine: Engine) -> list[str]:
    url = urllib.parse.urlsplit(engine.url)
    if not url.hostname or url.path not in ("", "/") or url.query or url.fragment or url.password:
        raise DockerUnavailable(f"{engine.url} is not an ssh://user@host[:port] engine URL")
    paths = _private_files(engine, {"id": engine.ssh_key, "known_hosts": engine.ssh_known_hosts})
    argv = [
        settings.DOCKER_SSH_COMMAND,
        "-F",
        "/dev/null",  # nothing from the worker's or the system's ssh configuration
        "-i",
        paths["id"],
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        f"UserKnownHostsFile={paths['known_hosts']}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",  # the pinned key or nothing; never trust on first use
        "-o",
        "UpdateHostKeys=no",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={SSH_CONNECT_TIMEOUT}",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "LogLevel=ERROR",
        "-T",
    ]
    if url.username:
        argv += ["-l", urllib.parse.unquote(url.username)]
    if url.port:
        argv += ["-p", str(url.port)]
    return [*argv, "--", url.hostname, "docker system dial-stdio"]


# What ssh last said on its standard error, per engine URL: why a connection failed (a host key that does not
# match the pinned one, a refused key), for the error the caller gets.
_ssh_errors: dict[str, str] = {}


class _SSHConnection(urllib3.connection.HTTPConnection):
    def __init__(self, argv: list[str], url: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.ssh_argv, self.engine_url, self.process, self.errors = argv, url, None, None

    def connect(self):
        ours, theirs = socket.socketpair()
        self.errors = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - an argument list, no shell
                self.ssh_argv, stdin=theirs, stdout=theirs, stderr=self.errors, start_new_session=True
            )
        except OSError as exc:
            ours.close()
            raise DockerUnavailable(f"{self.ssh_argv[0]} cannot run (Debian package openssh-client): {exc}") from exc
        finally:
            theirs.close()
        ours.settimeout(self.timeout if isinstance(self.timeout, int | float) else None)
        self.sock = ours

    def close(self):
        super().close()
        process, self.process = self.process, None
        if process is not None:
            try:
                process.wait(timeout=2)  # the socket's end is ssh's end of input: it leaves by itself
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.errors is not None:
            self.errors.seek(0)
            said = self.errors.read().decode(errors="replace").strip()
            if said:
                _ssh_errors[self.engine_url] = said.splitlines()[-1][:300]
            self.errors.close()
            self.errors = None


class _SSHConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, argv: list[str], url: str, timeout: float, maxsize: int):
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self.ssh_argv, self.engine_url, self.ssh_timeout = argv, url, timeout

    def _new_conn(self):
        return _SSHConnection(self.ssh_argv, self.engine_url, self.ssh_timeout)


class _SSHAdapter(docker.transport.basehttpadapter.BaseHTTPAdapter):
    def __init__(self, argv: list[str], url: str, timeout: float):
        super().__init__()
        self.pool = _SSHConnectionPool(argv, url, timeout, maxsize=10)

    def get_connection(self, url, proxies=None):
        return self.pool

    def request_url(self, request, proxies):
        return request.path_url  # no proxies and no host part: the connection is ssh's

    def close(self):
        super().close()
        self.pool.close()


def _ssh_client(engine: Engine) -> docker.DockerClient:
    """A client whose every connection is a fresh `ssh … docker system dial-stdio` to the host."""
    adapter = _SSHAdapter(_ssh_argv(engine), engine.url, settings.DOCKER_TIMEOUT)
    # Built as for a unix socket (the SDK then speaks plain HTTP over whatever the adapter connects), then
    # the adapter replaces the unix one; nothing is dialled until the first request.
    sdk = docker.DockerClient(base_url="unix:///nonexistent", timeout=settings.DOCKER_TIMEOUT, version=MIN_API_VERSION)
    sdk.api.mount("http+docker://", adapter)
    sdk.api._custom_adapter = adapter
    return sdk


MIN_API_VERSION = "1.41"  # Docker 20.10, the oldest engine a host may run


@lru_cache(maxsize=16)
def _client(base_url: str | Engine) -> docker.DockerClient:
    if isinstance(base_url, Engine) and base_url.uses_ssh:
        engine = _ssh_client(base_url)
        engine.api.trust_env = False
        try:
            engine.api._version = engine.api.version(api_version=False)["ApiVersion"]
        except (docker.errors.DockerException, *_TRANSPORT_ERRORS) as exc:
            said = _ssh_errors.pop(base_url.url, "")
            raise DockerUnavailable(
                f"the Docker engine at {base_url.url} does not answer over SSH: {said or exc}"
            ) from exc
        return engine
    if isinstance(base_url, Engine):
        tls = None
        if base_url.uses_tls:
            ca, cert, key = _tls_files(base_url)
            # verify=True with the host's own CA: the engine's certificate must be signed by it and name the
            # address we dial (an IP SAN for tcp://10.0.0.5:2376); a public CA is never trusted for an engine.
            tls = docker.tls.TLSConfig(client_cert=(cert, key), ca_cert=ca, verify=True)
        # The SDK is a requests Session, which lets REQUESTS_CA_BUNDLE (and proxy variables) from the
        # environment replace the CA it was given: build it without asking the engine anything, turn the
        # environment off, then ask the engine its API version as the SDK would have.
        engine = docker.DockerClient(
            base_url=base_url.url, tls=tls or False, timeout=settings.DOCKER_TIMEOUT, version=MIN_API_VERSION
        )
        engine.api.trust_env = False
        engine.api._version = engine.api.version(api_version=False)["ApiVersion"]
        return engine
    return docker.DockerClient(base_url=base_url, timeout=settings.DOCKER_TIMEOUT)


def client(base_url: EngineRef = None) -> docker.DockerClient:
    if isinstance(base_url, Engine) and not base_url.uses_tls and not base_url.uses_ssh:
        base_url = base_url.url  # a plain URL: the same client as when it is given as a string
    try:
        return _client(base_url or settings.DOCKER_HOST)
    except docker.errors.TLSParameterError as exc:
        raise DockerUnavailable(f"the TLS certificates for {engine_url(base_url)} are not usable: {exc}") from exc
    except (docker.errors.DockerException, *_TRANSPORT_ERRORS) as exc:  # the engine is asked its API version first
        raise _unavailable(exc, base_url) from exc


@_engine_call
def engine_info(*, base_url: EngineRef = None) -> EngineInfo:
    try:
        docker_client = client(base_url)
        info = docker_client.info()
        version = docker_client.version()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise DockerUnavailable(f"Docker engine at {engine_url(base_url)} does not answer: {exc}") from exc
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


@_engine_call
def image_exists(*, tag: str, base_url: EngineRef = None) -> bool:
    try:
        client(base_url).images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


@_engine_call
def image_build(*, path: str, tags: list[str], base_url: EngineRef = None) -> str:
    """Build an image from a local directory with the classic builder (no BuildKit, no registry)."""
    engine = client(base_url)
    try:
        image, _ = engine.images.build(path=path, tag=tags[0], rm=True, forcerm=True, pull=False)
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        raise ProvisioningError(f"building {tags[0]} failed: {exc}") from exc
    for tag in tags[1:]:
        repository, _, version = tag.rpartition(":")
        image.tag(repository, version)
    return image.id


@_engine_call
def image_tag(*, image: str, tag: str, base_url: EngineRef = None) -> None:
    """Point `tag` at the image `image` names (moving it if it pointed elsewhere)."""
    repository, _, version = tag.rpartition(":")
    try:
        client(base_url).images.get(image).tag(repository, version)
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"tagging {image} as {tag} failed: {exc}") from exc


@_engine_call
def image_id(*, tag: str, base_url: EngineRef = None) -> str | None:
    """The id of the image `tag` names on the engine, or None when the engine has no such image."""
    try:
        return client(base_url).images.get(tag).id
    except docker.errors.ImageNotFound:
        return None


@dataclass(frozen=True)
class ImageTagged:
    reference: str  # one tag of the image, e.g. mariadb:10.11
    image_id: str
    created: int  # seconds since the epoch, as the engine says


@_engine_call
def image_list(*, base_url: EngineRef = None) -> list[ImageTagged]:
    """Every tagged image on the engine, one row per tag: one API call (`docker images`)."""
    try:
        images = client(base_url).api.images()
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"listing the images of {engine_url(base_url)} failed: {exc}") from exc
    return [
        ImageTagged(reference=tag, image_id=image["Id"], created=int(image.get("Created") or 0))
        for image in images
        for tag in image.get("RepoTags") or ()
        if tag != "<none>:<none>"
    ]


@_engine_call
def image_copy(*, image: str, source: EngineRef, target: EngineRef) -> bool:
    """Give `target` the image `source` has under the name `image` (same id, same tag), streamed from one
    engine's API to the other's (`docker save | docker load`: nothing on disk here, no registry). False when
    the target already has that very image. How a host gets the images the platform built or loaded."""
    wanted = image_id(tag=image, base_url=source)
    if wanted is None:
        raise ProvisioningError(f"image {image} is not on {engine_url(source)}; build it with manage.py images_build")
    if image_id(tag=image, base_url=target) == wanted:
        return False
    try:
        stream = client(source).api.get_image(image)
        client(target).api.load_image(stream)
    except docker.errors.APIError as exc:
        raise ProvisioningError(
            f"copying {image} from {engine_url(source)} to {engine_url(target)} failed: {exc.explanation or exc}"
        ) from exc
    if image_id(tag=image, base_url=target) != wanted:
        raise ProvisioningError(f"{engine_url(target)} did not keep {image} after loading it")
    return True


@dataclass(frozen=True)
class EngineFacts:
    """What a host's engine says about itself (`docker info` and `docker version`)."""

    server_version: str
    api_version: str
    storage_driver: str
    cgroup_driver: str
    cgroup_version: str
    memory_limit: bool  # the engine can cap a container's memory (and swap)
    cpu_limit: bool  # CFS quota: --cpus
    pids_limit: bool
    memory_bytes: int
    cpus: int
    warnings: tuple[str, ...]


@_engine_call
def engine_facts(*, base_url: EngineRef = None) -> EngineFacts:
    engine = client(base_url)
    try:
        info, version = engine.info(), engine.version()
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"{engine_url(base_url)} did not describe itself: {exc.explanation or exc}") from exc
    return EngineFacts(
        server_version=version.get("Version", ""),
        api_version=version.get("ApiVersion", ""),
        storage_driver=info.get("Driver", ""),
        cgroup_driver=info.get("CgroupDriver", ""),
        cgroup_version=str(info.get("CgroupVersion", "")),
        memory_limit=bool(info.get("MemoryLimit")) and bool(info.get("SwapLimit")),
        cpu_limit=bool(info.get("CpuCfsQuota")),
        pids_limit=bool(info.get("PidsLimit")),
        memory_bytes=info.get("MemTotal", 0),
        cpus=info.get("NCPU", 0),
        warnings=tuple(info.get("Warnings") or ()),
    )


@dataclass(frozen=True)
class Probe:
    name: str
    port: int  # published on the address asked for
    disk_free_bytes: int  # of the filesystem holding the engine's data root (the container's root is on it)
    disk_total_bytes: int


@_engine_call
def probe_start(
    *,
    name: str,
    image: str,
    command: list[str],
    container_port: int,
    address: str,
    labels: dict[str, str],
    base_url: EngineRef = None,
) -> Probe:
    """A throwaway container on the engine, its `container_port` published on `address` (a port the engine
    picks), for the platform to connect to: an engine that cannot bind that address refuses to start it,
    so the address is the host's own. Also reads the free disk of the engine's data root from inside it.
    Remove it with container_remove."""
    engine = client(base_url)
    try:
        engine.containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass
    with _starting(name, image):
        container = engine.containers.run(
            image,
            command=command,
            name=name,
            labels=labels,
            detach=True,
            ports={f"{container_port}/tcp": (address, None)},
            mem_limit=64 * 1024 * 1024,
            pids_limit=64,
            security_opt=["no-new-privileges:true"],
        )
    try:
        container.reload()
        binding = container.attrs["NetworkSettings"]["Ports"][f"{container_port}/tcp"][0]
        result = container.exec_run(["df", "-Pk", "/"])
        if result.exit_code != 0:
            raise ProvisioningError(f"df in {name} exited {result.exit_code}: {result.output.decode(errors='replace')}")
        fields = result.output.decode().splitlines()[-1].split()
        total_kb, available_kb = int(fields[1]), int(fields[3])
    except (docker.errors.APIError, KeyError, IndexError, ValueError, TypeError) as exc:
        container.remove(force=True)
        raise ProvisioningError(f"the probe container on {engine_url(base_url)} did not report: {exc}") from exc
    return Probe(
        name=name, port=int(binding["HostPort"]), disk_free_bytes=available_kb * 1024, disk_total_bytes=total_kb * 1024
    )


@_engine_call
def host_network_helper_start(
    *, name: str, image: str, command: list[str], labels: dict[str, str], capabilities: list[str], base_url: EngineRef
) -> None:
    """A short-lived container in the host's own network namespace (network_mode=host) holding only
    `capabilities` (every other one dropped, not privileged, no new privileges), running `command` and removed
    by the engine when that exits: how the platform changes a host's firewall through the Docker API alone
    (provisioning/egress.py). Remove it with container_remove when done."""
    engine = client(base_url)
    try:
        engine.containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass
    with _starting(name, image):
        engine.containers.run(
            image,
            command=command,
            name=name,
            labels=labels,
            detach=True,
            auto_remove=True,
            network_mode="host",
            cap_drop=["ALL"],
            cap_add=capabilities,
            security_opt=["no-new-privileges:true"],
            mem_limit=64 * 1024 * 1024,
            pids_limit=64,
        )


# --- Store stacks ------------------------------------------------------------------------------
# Every function looks up what exists (by name) before it creates anything, so a retried step resumes.


# The engine's option that names a bridge network's interface on the host (at most 15 characters).
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


@dataclass(frozen=True)
class NetworkInfo:
    id: str
    name: str
    bridge: str  # the interface on the host: the one asked for, or the engine's own "br-<id>"
    labels: dict[str, str]


def _network_info(network) -> NetworkInfo:
    attrs = network.attrs
    bridge = (attrs.get("Options") or {}).get(BRIDGE_NAME_OPTION) or f"br-{network.id[:12]}"
    return NetworkInfo(id=network.id, name=network.name, bridge=bridge, labels=attrs.get("Labels") or {})


@_engine_call
def network_ensure(
    *,
    name: str,
    labels: dict[str, str],
    internal: bool = False,
    bridge: str | None = None,
    base_url: EngineRef = None,
) -> NetworkInfo:
    """A bridge network; `internal` ones have no route out (and so no published ports). `bridge` names its
    interface on the host (firewall rules match it); an existing network keeps the interface it has."""
    engine = client(base_url)
    try:
        existing = engine.networks.list(names=[name])
        exact = [n for n in existing if n.name == name]
        if exact:
            return _network_info(exact[0])
        created = engine.networks.create(
            name,
            driver="bridge",
            labels=labels,
            internal=internal,
            options={BRIDGE_NAME_OPTION: bridge} if bridge else None,
            check_duplicate=True,
        )
        return _network_info(created)
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not create network {name}: {exc.explanation or exc}") from exc


@_engine_call
def networks_by_label(*, label: str, base_url: EngineRef = None) -> list[NetworkInfo]:
    """The networks carrying `label` (a key, or key=value)."""
    try:
        return [_network_info(n) for n in client(base_url).networks.list(filters={"label": label})]
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not list networks labelled {label}: {exc.explanation or exc}") from exc


@_engine_call
def volume_ensure(*, name: str, labels: dict[str, str], base_url: EngineRef = None) -> str:
    engine = client(base_url)
    try:
        return engine.volumes.get(name).name
    except docker.errors.NotFound:
        return engine.volumes.create(name=name, labels=labels).name
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not create volume {name}: {exc.explanation or exc}") from exc


@_engine_call
def stack_container_ensure(
    *,
    name: str,
    image: str,
    network: str,
    alias: str,
    labels: dict[str, str],
    memory_bytes: int,
    cpus: float,
    environment: dict[str, str],
    volumes: dict[str, str],
    command: list[str] | None = None,
    healthcheck: list[str] | None = None,
    publish: tuple[int, str, int | None] | None = None,
    pids_limit: int | None = None,
    cap_add: list[str] | None = None,
    read_only: bool = False,
    tmpfs: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    secrets_dir: str = "/run/secrets",
    secrets_gid: int = 0,
    user: str | None = None,
    base_url: EngineRef = None,
) -> tuple[ContainerInfo, bool]:
    """A running container for one store service; returns (info, created).

    An existing container is started if stopped and reused. `publish` is (container port, host address,
    host port or None for one the engine picks): the address is explicit, never all interfaces.

    Every container is confined: `pids_limit` processes, a rotated json-file log, no-new-privileges, every
    capability dropped but `cap_add`, and with `read_only` a read-only root with `tmpfs` mounts. `secrets`
    (file name -> content) are written into the volume `<name>-secrets` before the container starts, and it
    is mounted read-only at `secrets_dir`: the `*_FILE` variables point there, so `docker inspect` and the
    engine's API never show a password.
    """
    engine = client(base_url)
    with _starting(name, image):
        try:
            container = engine.containers.get(name)
            if container.status != "running":
                container.start()
            container.reload()
            return _container_info(container), False
        except docker.errors.NotFound:
            pass
        binds = {volume: {"bind": path, "mode": "rw"} for volume, path in volumes.items()}
        if secrets:
            secrets_volume = _secrets_write(
                engine, name=f"{name}-secrets", image=image, labels=labels, secrets=secrets, gid=secrets_gid
            )
            binds[secrets_volume] = {"bind": secrets_dir, "mode": "ro"}
        host_config = engine.api.create_host_config(
            mem_limit=memory_bytes,
            memswap_limit=memory_bytes,
            nano_cpus=int(cpus * 1_000_000_000),
            restart_policy={"Name": "unless-stopped"},
            binds=binds,
            port_bindings=(
                {publish[0]: (publish[1], publish[2]) if publish[2] else (publish[1],)} if publish else None
            ),
            pids_limit=pids_limit,
            log_config={"type": "json-file", "config": _log_options()},
            security_opt=["no-new-privileges:true"],
            cap_drop=["ALL"],
            cap_add=list(cap_add or []),
            read_only=read_only,
            tmpfs=dict(tmpfs or {}),
        )
        networking = engine.api.create_networking_config({network: engine.api.create_endpoint_config(aliases=[alias])})
        created = engine.api.create_container(
            image,
            command=command,
            name=name,
            labels=labels,
            environment=environment,
            user=user,
            host_config=host_config,
            networking_config=networking,
            ports=[publish[0]] if publish else None,
            healthcheck=(
                {"test": healthcheck, "interval": 10_000_000_000, "timeout": 5_000_000_000, "retries": 5}
                if healthcheck
                else None
            ),
        )
        container = engine.containers.get(created["Id"])
        container.start()
        container.reload()
    return _container_info(container), True


def _log_options() -> dict[str, str]:
    return {"max-size": settings.STORE_LOG_MAX_SIZE, "max-file": str(settings.STORE_LOG_MAX_FILE)}


def _secrets_write(engine, *, name: str, image: str, labels: dict[str, str], secrets: dict[str, str], gid: int) -> str:
    """The volume `name` holding one 0440 file per secret (owner root, group `gid`), written through the
    engine's archive API into a helper container that is created, never started, and removed: this works
    the same on a remote engine, and no secret is ever on a command line or in a container's config."""
    try:
        engine.volumes.get(name)
    except docker.errors.NotFound:
        engine.volumes.create(name=name, labels=labels)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for file_name, content in secrets.items():
            data = content.encode()
            info = tarfile.TarInfo(file_name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o440, 0, gid, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    writer_name = f"{name}-writer"
    try:
        engine.containers.get(writer_name).remove(force=True)
    except docker.errors.NotFound:
        pass
    writer = engine.api.create_container(
        image,
        command=["true"],
        name=writer_name,
        labels=labels,
        network_disabled=True,
        host_config=engine.api.create_host_config(binds={name: {"bind": "/secrets", "mode": "rw"}}),
    )
    try:
        if not engine.api.put_archive(writer["Id"], "/secrets", archive.getvalue()):
            raise ProvisioningError(f"could not write the secrets of {name}")
    finally:
        engine.api.remove_container(writer["Id"], force=True, v=True)  # with the image's anonymous volumes
    return name


@_engine_call
def container_secrets_rewrite(
    *, name: str, image: str, labels: dict[str, str], secrets: dict[str, str], gid: int, base_url: str | None = None
) -> None:
    """Write the secret files of the container `name` again (its `<name>-secrets` volume), as at its creation:
    the running container reads the new files at once (a claimed pool stack's rotated passwords)."""
    _secrets_write(client(base_url), name=f"{name}-secrets", image=image, labels=labels, secrets=secrets, gid=gid)


@_engine_call
def container_exec(
    *, name: str, command: list[str], environment: dict[str, str] | None = None, base_url: EngineRef = None
) -> tuple[int, str]:
    """Run a command (an argument list, never a shell string) in a container; (exit code, output)."""
    try:
        result = client(base_url).containers.get(name).exec_run(command, environment=environment or {}, demux=False)
    except docker.errors.NotFound as exc:
        raise ProvisioningError(f"container {name} does not exist") from exc
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"exec in {name} failed: {exc.explanation or exc}") from exc
    return result.exit_code, (result.output or b"").decode(errors="replace")


@_engine_call
def container_stop(*, name: str, timeout: int = 10, base_url: EngineRef = None) -> bool:
    try:
        client(base_url).containers.get(name).stop(timeout=timeout)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not stop {name}: {exc.explanation or exc}") from exc
    return True


@_engine_call
def container_update_limits(
    *, name: str, memory_bytes: int, cpus: float, pids_limit: int | None = None, base_url: EngineRef = None
) -> None:
    api = client(base_url).api
    try:
        container_id = api.inspect_container(name)["Id"]
        # The SDK's update_container() has no NanoCpus, and the engine refuses CpuQuota on a container
        # created with NanoCpus; so this posts the engine's own update body.
        response = api._post_json(
            api._url("/containers/{0}/update", container_id),
            data={
                "Memory": memory_bytes,
                "MemorySwap": memory_bytes,
                "NanoCpus": int(cpus * 1_000_000_000),
                **({"PidsLimit": pids_limit} if pids_limit else {}),
            },
        )
        api._raise_for_status(response)
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not update limits of {name}: {exc.explanation or exc}") from exc


@_engine_call
def labelled_objects(*, label: str, base_url: EngineRef = None) -> dict[str, list[str]]:
    """Names of the containers, networks and volumes carrying `label` (key=value)."""
    engine = client(base_url)
    return {
        "containers": sorted(c.name for c in engine.containers.list(all=True, filters={"label": label})),
        "networks": sorted(n.name for n in engine.networks.list(filters={"label": label})),
        "volumes": sorted(v.name for v in engine.volumes.list(filters={"label": label})),
    }


@_engine_call
def volume_sizes_by_label(*, key: str, base_url: EngineRef = None) -> dict[str, int]:
    """Bytes on disk of the volumes carrying the label `key`, summed per value of it ("shophosting.store":
    {"12": 734003200, ...}), as the engine's disk-usage report counts them. The engine walks every volume for
    that report, so it is for a periodic job, never a page view."""
    try:
        report = client(base_url).df()
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"the engine did not report its disk usage: {exc.explanation or exc}") from exc
    sizes: dict[str, int] = {}
    for volume in report.get("Volumes") or []:
        value = (volume.get("Labels") or {}).get(key)
        size = (volume.get("UsageData") or {}).get("Size", -1)
        if value is not None and size >= 0:  # -1: the engine could not size it (e.g. a remote driver)
            sizes[value] = sizes.get(value, 0) + size
    return sizes


@_engine_call
def labelled_objects_remove(*, label: str, base_url: EngineRef = None) -> dict[str, list[str]]:
    """Remove every container, then network and volume, carrying `label`. Idempotent."""
    engine = client(base_url)
    removed = labelled_objects(label=label, base_url=base_url)
    try:
        for container in engine.containers.list(all=True, filters={"label": label}):
            container.remove(force=True, v=True)
        for network in engine.networks.list(filters={"label": label}):
            network.remove()
        for volume in engine.volumes.list(filters={"label": label}):
            volume.remove(force=True)
    except docker.errors.NotFound:
        pass  # removed concurrently; a retry finds nothing left
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not remove objects labelled {label}: {exc.explanation or exc}") from exc
    return removed


@_engine_call
def container_exec_to_file(
    *, name: str, command: list[str], path: str, environment: dict[str, str] | None = None, base_url: EngineRef = None
) -> int:
    """Run a command in a container and stream its stdout into `path` (never held in memory). Returns the
    number of bytes written; raises ProvisioningError with the command's stderr when it exits non-zero."""
    api = client(base_url).api
    try:
        exec_id = api.exec_create(name, command, stdout=True, stderr=True, environment=environment or {})["Id"]
        written = 0
        errors = bytearray()
        with open(path, "wb") as handle:
            for stdout, stderr in api.exec_start(exec_id, stream=True, demux=True):
                if stdout:
                    handle.write(stdout)
                    written += len(stdout)
                if stderr:
                    errors += stderr[-4000:]
        exit_code = api.exec_inspect(exec_id)["ExitCode"]
    except docker.errors.NotFound as exc:
        raise ProvisioningError(f"container {name} does not exist") from exc
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"exec in {name} failed: {exc.explanation or exc}") from exc
    if exit_code != 0:
        raise ProvisioningError(f"{command[0]} in {name} exited {exit_code}: {errors.decode(errors='replace')[-2000:]}")
    return written


@_engine_call
def container_archive_get(*, name: str, path: str, tar_path: str, base_url: EngineRef = None) -> int:
    """Copy `path` out of a container (running or stopped) as a tar file; returns its size in bytes."""
    try:
        chunks, _ = client(base_url).containers.get(name).get_archive(path)
        size = 0
        with open(tar_path, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                size += len(chunk)
    except docker.errors.NotFound as exc:
        raise ProvisioningError(f"{path} in container {name} does not exist") from exc
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not copy {path} out of {name}: {exc.explanation or exc}") from exc
    return size


@dataclass(frozen=True)
class ContainerSummary:
    status: str  # running, exited, ...
    labels: dict[str, str]
    published: list[tuple[str, int]]  # (host address, host port) pairs
    image_id: str


@_engine_call
def container_summary(*, name: str, base_url: EngineRef = None) -> ContainerSummary | None:
    """What one inspect of the container says of its state, labels, published ports and image id; None when
    there is no such container."""
    try:
        attrs = client(base_url).api.inspect_container(name)
    except docker.errors.NotFound:
        return None
    bindings = attrs["HostConfig"].get("PortBindings") or {}
    return ContainerSummary(
        status=attrs["State"].get("Status", ""),
        labels=dict(attrs["Config"].get("Labels") or {}),
        published=[
            (binding.get("HostIp", ""), int(binding["HostPort"]))
            for spec in bindings.values()
            for binding in spec or []
            if binding.get("HostPort")
        ],
        image_id=attrs["Image"],
    )


@_engine_call
def container_path_exists(*, name: str, path: str, base_url: EngineRef = None) -> bool:
    """Whether `path` exists in the container (its filesystem or a volume it mounts)."""
    try:
        chunks, _ = client(base_url).api.get_archive(name, path)
        for _chunk in chunks:  # read to its end, so the connection is free again
            pass
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not look for {path} in {name}: {exc.explanation or exc}") from exc
    return True


@_engine_call
def container_state(*, name: str, base_url: EngineRef = None) -> tuple[str, str]:
    """(status, health) of a container: ("running", "healthy"), ("exited", "")…; ("missing", "") if absent."""
    try:
        state = client(base_url).api.inspect_container(name)["State"]
    except docker.errors.NotFound:
        return "missing", ""
    return state.get("Status", ""), (state.get("Health") or {}).get("Status", "")


@_engine_call
def container_image(*, name: str, base_url: EngineRef = None) -> str | None:
    """The image reference a container was created from (as it was asked for, e.g. `shophosting/wordpress:6`);
    None if there is no such container."""
    try:
        return client(base_url).api.inspect_container(name)["Config"]["Image"]
    except docker.errors.NotFound:
        return None


@_engine_call
def container_remove(*, name: str, base_url: EngineRef = None) -> bool:
    """Remove a container (stopped first) with its anonymous volumes; the named volumes it mounts are kept.
    False if there was none."""
    try:
        client(base_url).containers.get(name).remove(force=True, v=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not remove {name}: {exc.explanation or exc}") from exc
    return True


@_engine_call
def container_rename(*, name: str, new_name: str, base_url: EngineRef = None) -> None:
    try:
        client(base_url).containers.get(name).rename(new_name)
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not rename {name} to {new_name}: {exc.explanation or exc}") from exc


@_engine_call
def container_start(*, name: str, base_url: EngineRef = None) -> None:
    try:
        client(base_url).containers.get(name).start()
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not start {name}: {exc.explanation or exc}") from exc


@_engine_call
def volume_contents_replace(
    *, volume: str, top_directory: str, tar_path: str, image: str, labels: dict[str, str], base_url: EngineRef = None
) -> None:
    """Make a volume hold exactly what a tar from container_archive_get holds (its entries start with
    `top_directory/`, the mount point's name). A short-lived helper container mounts the volume there,
    empties it (files that are not in the tar must go) and lets the engine unpack the tar, ownership kept."""
    engine = client(base_url)
    helper_name = f"{volume}-restore"
    mount = f"/restore/{top_directory}"
    with _starting(helper_name, image):
        try:
            engine.containers.get(helper_name).remove(force=True)
        except docker.errors.NotFound:
            pass
        helper = engine.containers.create(
            image,
            command=["sleep", "3600"],
            name=helper_name,
            labels=labels,
            volumes={volume: {"bind": mount, "mode": "rw"}},
            network_disabled=True,
        )
    try:
        helper.start()
        emptied = helper.exec_run(["find", mount, "-mindepth", "1", "-delete"])
        if emptied.exit_code != 0:
            raise ProvisioningError(f"could not empty volume {volume}: {emptied.output.decode(errors='replace')}")
        with open(tar_path, "rb") as handle:
            if not helper.put_archive("/restore", handle):
                raise ProvisioningError(f"could not unpack into volume {volume}")
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"restoring volume {volume} failed: {exc.explanation or exc}") from exc
    finally:
        helper.remove(force=True)


@_engine_call
def container_archive_put(*, name: str, path: str, tar_path: str, base_url: EngineRef = None) -> None:
    """Unpack a tar file into `path` of a container (the engine keeps the tar's ownership)."""
    try:
        with open(tar_path, "rb") as handle:
            if not client(base_url).containers.get(name).put_archive(path, handle):
                raise ProvisioningError(f"could not copy into {name}:{path}")
    except docker.errors.NotFound as exc:
        raise ProvisioningError(f"container {name} or its {path} does not exist") from exc
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not copy into {name}: {exc.explanation or exc}") from exc


@dataclass(frozen=True)
class ContainerUsage:
    memory_bytes: int
    memory_limit_bytes: int
    cpu_percent: float  # of one CPU


@_engine_call
def container_usage(*, name: str, base_url: EngineRef = None) -> ContainerUsage | None:
    """One stats reading (the engine takes two samples a second apart); None if the container is not running."""
    try:
        stats = client(base_url).api.stats(name, stream=False)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"could not read the usage of {name}: {exc.explanation or exc}") from exc
    memory = stats.get("memory_stats") or {}
    if not memory.get("usage"):
        return None
    # What the kernel could reclaim at once (the page cache) is not the store's real use.
    cache = (memory.get("stats") or {}).get("inactive_file", 0)
    cpu, precpu = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - precpu.get("cpu_usage", {}).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - precpu.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or []) or 1
    percent = (cpu_delta / system_delta) * cpus * 100 if system_delta > 0 and cpu_delta > 0 else 0.0
    return ContainerUsage(
        memory_bytes=max(memory["usage"] - cache, 0), memory_limit_bytes=memory.get("limit", 0), cpu_percent=percent
    )


# --- Copying a store's data between engines (provisioning/move_steps.py) -----------------------------------


@_engine_call
def volume_helper_start(
    *, name: str, image: str, volumes: dict[str, str], labels: dict[str, str], base_url: EngineRef = None
) -> str:
    """A short-lived container mounting `volumes` (volume name -> path) with no network, idling so that the
    archive API and execs can read or write them while the store's own containers are stopped or not yet
    created. It carries the store's labels (so removing the store's objects removes a leftover one); the
    caller removes it with container_remove. An old one of the same name is replaced."""
    engine = client(base_url)
    with _starting(name, image):
        try:
            engine.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
        helper = engine.containers.create(
            image,
            entrypoint=["sleep"],
            command=["86400"],
            name=name,
            labels=labels,
            volumes={volume: {"bind": path, "mode": "rw"} for volume, path in volumes.items()},
            network_disabled=True,
        )
        helper.start()
    return name


class _Counted:
    """An iterable of chunks that counts the bytes passing through it."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.size = 0

    def __iter__(self):
        for chunk in self.chunks:
            if chunk:
                self.size += len(chunk)
                yield chunk


@_engine_call
def archive_copy(
    *,
    source_container: str,
    source_path: str,
    source_engine: EngineRef,
    target_container: str,
    target_path: str,
    target_engine: EngineRef,
) -> int:
    """Copy `source_path` of a container on one engine into `target_path` of a container on another, as the
    engines' tar archives streamed from one API to the other (`docker cp` twice, nothing on the platform's
    disk, ownership and modes kept). Returns the bytes of the archive."""
    try:
        chunks, _ = client(source_engine).api.get_archive(source_container, source_path)
        stream = _Counted(chunks)
        if not client(target_engine).api.put_archive(target_container, target_path, stream):
            raise ProvisioningError(f"{engine_url(target_engine)} did not unpack {source_path} into {target_path}")
    except docker.errors.NotFound as exc:
        raise ProvisioningError(f"copying {source_path}: {exc.explanation or exc}") from exc
    except docker.errors.APIError as exc:
        raise ProvisioningError(
            f"copying {source_path} from {engine_url(source_engine)} to {engine_url(target_engine)} failed: "
            f"{exc.explanation or exc}"
        ) from exc
    return stream.size


@_engine_call
def tar_copy(
    *,
    source_container: str,
    source_dir: str,
    paths: list[str],
    source_engine: EngineRef,
    target_container: str,
    target_dir: str,
    target_engine: EngineRef,
) -> int:
    """Copy the entries `paths` (relative to `source_dir`; a directory without its contents) from a container
    on one engine into `target_dir` of a container on another: `tar` in the source container, its output
    streamed into the target engine's archive API. Returns the bytes of the archive."""
    api = client(source_engine).api
    errors = bytearray()
    try:
        exec_id = api.exec_create(
            source_container,
            ["tar", "-C", source_dir, "--no-recursion", "-cf", "-", "--", *paths],
            stdout=True,
            stderr=True,
        )["Id"]

        def stdout():
            for out, err in api.exec_start(exec_id, stream=True, demux=True):
                if err:
                    errors.extend(err[-4000:])
                if out:
                    yield out

        stream = _Counted(stdout())
        if not client(target_engine).api.put_archive(target_container, target_dir, stream):
            raise ProvisioningError(f"{engine_url(target_engine)} did not unpack the changed files")
        exit_code = api.exec_inspect(exec_id)["ExitCode"]
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"copying the changed files failed: {exc.explanation or exc}") from exc
    if exit_code not in (0, None):
        raise ProvisioningError(f"tar in {source_container} exited {exit_code}: {errors.decode(errors='replace')}")
    return stream.size


@_engine_call
def container_exec_wait(
    *,
    name: str,
    command: list[str],
    environment: dict[str, str] | None = None,
    timeout: float = 3600,
    base_url: EngineRef = None,
) -> int:
    """Run a command that may be silent for long (a database dump or import) in a container and wait for its
    exit code: started detached and polled, so no read of the engine's API waits longer than DOCKER_TIMEOUT.
    The command keeps its own output (redirect it to a file in a volume)."""
    api = client(base_url).api
    try:
        exec_id = api.exec_create(name, command, environment=environment or {}, stdout=False, stderr=False)["Id"]
        api.exec_start(exec_id, detach=True)
        deadline = time.monotonic() + timeout
        while True:
            state = api.exec_inspect(exec_id)
            if not state.get("Running") and state.get("ExitCode") is not None:
                return state["ExitCode"]
            if time.monotonic() > deadline:
                raise ProvisioningError(f"{command[0]} in {name} did not finish within {timeout:.0f} s")
            time.sleep(0.05)
    except docker.errors.NotFound as exc:
        raise ProvisioningError(f"container {name} does not exist") from exc
    except docker.errors.APIError as exc:
        raise ProvisioningError(f"exec in {name} failed: {exc.explanation or exc}") from exc
