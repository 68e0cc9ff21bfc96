"""A second real Docker engine, as a second host would be: a `dockerd` in a network namespace the tests
create, reached over TCP with TLS client certificates the tests generate (stores/README.md, "Hosts").

The namespace holds 10.213.0.2, linked to the host's 10.213.0.1 by a veth pair (tests/netns.py), with no
route beyond that link: the engine and its containers reach nothing but the host's end. The engine has
its own data root, exec root, pid file, unix socket, bridge (`sh2br0`, 10.213.64.1/24), address pool for
the stores' networks (10.213.128.0/17), cgroup parent and containerd namespace, and listens on
tcp://10.213.0.2:2376 with --tlsverify. Store ports are published on 10.213.0.2, which the test nginx (in
the host's namespace) proxies to, as the platform's nginx reaches a host over its private network.

Started once per session and only when a test asks for `second_engine`; the store images the stacks need
are copied into it from the first engine through the Docker API (`docker_client.image_copy`), only those
it lacks (the data root is kept between sessions, like the first engine's, so later sessions copy
nothing). Under CI=true an engine that does not start fails the test instead of skipping it.
"""

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from tests import netns
from tests.plugins import ROOT
from tests.plugins.ci import require_or_skip

ADDRESS = "10.213.0.2"  # the namespace's end of the link; the host's is 10.213.0.1
PORT = 2376
BRIDGE = "sh2br0"
BRIDGE_ADDRESS = "10.213.64.1/24"
ADDRESS_POOL = "base=10.213.128.0/17,size=24"
NAME = "shophosting-test-engine2"
DATA_ROOT = Path("/var/lib") / NAME
EXEC_ROOT = Path("/run") / NAME
SOCKET = Path("/run") / f"{NAME}.sock"
PIDFILE = Path("/run") / f"{NAME}.pid"
LOG = ROOT / "var" / "log" / f"{NAME}.log"


@dataclass
class TLSFiles:
    """PEM text of the CA, the engine's certificate and key, and a client certificate and key."""

    ca: str
    server_cert: str
    server_key: str = field(repr=False)
    client_cert: str
    client_key: str = field(repr=False)


def tls_files_make(*, address: str, common_name: str = "shophosting test engine") -> TLSFiles:
    """A fresh CA; a server certificate for `address` (as an IP SAN, so the client checks it); a client
    certificate (clientAuth) the engine accepts because the same CA signed it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def pem_key(private) -> str:
        return private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def certificate(subject: str, public, issuer: str, signer, *, ca: bool, extensions=()) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = key()
    ca = certificate(f"{common_name} CA", ca_key.public_key(), f"{common_name} CA", ca_key, ca=True)
    server_key, client_key = key(), key()
    server = certificate(
        common_name,
        server_key.public_key(),
        f"{common_name} CA",
        ca_key,
        ca=False,
        extensions=[
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ],
    )
    client = certificate(
        "shophosting platform",
        client_key.public_key(),
        f"{common_name} CA",
        ca_key,
        ca=False,
        extensions=[x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])],
    )

    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    return TLSFiles(
        ca=pem(ca),
        server_cert=pem(server),
        server_key=pem_key(server_key),
        client_cert=pem(client),
        client_key=pem_key(client_key),
    )


# A resolver that knows no name: every query gets NXDOMAIN, its question echoed (RFC 1035 4.1.1).
NXDOMAIN_RESOLVER = """
import socket, sys
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind((sys.argv[1], 53))
while True:
    query, client = server.recvfrom(512)
    if len(query) < 12:
        continue
    flags = 0x8000 | (query[2] & 0x79) << 8 | 0x80 | 3  # response, opcode and RD kept, RA, NXDOMAIN
    server.sendto(query[:2] + flags.to_bytes(2, "big") + query[4:6] + bytes(6) + query[12:], client)
"""


@dataclass
class SecondEngine:
    """The running second engine: where it listens and the client's TLS material, and stop()/start() for
    the tests of a host that goes away."""

    namespace: netns.Namespace
    tls: TLSFiles
    tls_dir: Path
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return self.namespace.address

    @property
    def url(self) -> str:
        return f"tcp://{self.address}:{PORT}"

    @property
    def socket_url(self) -> str:
        return f"unix://{SOCKET}"

    def engine(self):
        """What docker_client needs to reach it (stores.models.Engine)."""
        from stores.models import Engine

        return Engine(url=self.url, ca_pem=self.tls.ca, cert_pem=self.tls.client_cert, key_pem=self.tls.client_key)

    def argv(self) -> list[str]:
        return self.namespace.command(
            [
                "dockerd",
                f"--data-root={DATA_ROOT}",
                f"--exec-root={EXEC_ROOT}",
                f"--pidfile={PIDFILE}",
                f"--host=unix://{SOCKET}",
                f"--host=tcp://{self.address}:{PORT}",
                "--tlsverify",
                f"--tlscacert={self.tls_dir / 'ca.pem'}",
                f"--tlscert={self.tls_dir / 'server-cert.pem'}",
                f"--tlskey={self.tls_dir / 'server-key.pem'}",
                f"--bridge={BRIDGE}",
                f"--default-address-pool={ADDRESS_POOL}",
                f"--cgroup-parent=/{NAME}",
                f"--containerd-namespace={NAME}",
                f"--containerd-plugins-namespace={NAME}-plugins",
                # The namespace has no route to the machine's resolver, and the engine's embedded DNS waits
                # 20 s for one that does not answer (a store's WordPress looks its own name up to spawn
                # its cron): the namespace's own stand-in answers every name "does not exist" at once.
                f"--dns={self.address}",
                "--ip-forward=true",
                "--iptables=true",
            ]
        )

    def host_register(self, *, name: str, port_range_start: int, memory_capacity_mb: int = 20480, cpu_capacity=32):
        """This engine saved as a host the way the admin does: its registration check run, its TLS stored."""
        from provisioning.hosts import host_check
        from stores.models import Host
        from stores.services import host_save

        host = Host(
            name=name,
            docker_url=self.url,
            bind_address=self.address,
            port_range_start=port_range_start,
            port_range_end=port_range_start + 99,
            memory_capacity_mb=memory_capacity_mb,
            cpu_capacity=cpu_capacity,
        )
        tls = {"ca": self.tls.ca, "cert": self.tls.client_cert, "key": self.tls.client_key}
        return host_save(host=host, tls=tls, check=host_check(engine=self.engine(), bind_address=self.address))

    def answers(self) -> bool:
        from provisioning import docker_client

        try:
            docker_client.engine_info(base_url=self.engine())
        except docker_client.DockerUnavailable:
            return False
        return True

    def start(self, timeout: float = 60) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        LOG.parent.mkdir(parents=True, exist_ok=True)
        with LOG.open("a") as log:
            # Its own session: a Ctrl-C of pytest must not reach dockerd before the fixture stops it.
            self.process = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"the second dockerd exited ({self.process.returncode}); see {LOG}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the second dockerd did not answer within {timeout} s; see {LOG}")
            time.sleep(0.3)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, as a host's `systemctl stop docker`, and wait for it (this process is its parent: the
        wait reaps it, so no zombie is left for the next start to trip over)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def is_second_engine(pid: int) -> bool:
    """Whether process `pid` is this module's dockerd (tests that look for the machine's one dockerd skip it)."""
    try:
        return f"--pidfile={PIDFILE}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def _stale_dockerd_stop() -> None:
    """A dockerd a killed session left (its pid file names it): stop it before its namespace is replaced."""
    try:
        pid = int(PIDFILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return
    if f"--pidfile={PIDFILE}".encode() not in cmdline:
        return  # the pid was reused by something else
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)


def _images_needed() -> list[str]:
    """The images the WooCommerce stack runs (every role, as the provision step records them)."""
    return sorted(set(settings.STORE_IMAGES["woocommerce"].values()))


@pytest.fixture(scope="session")
def second_engine(store_images, tmp_path_factory):
    """A second engine in its own namespace, over TCP with TLS, holding the WooCommerce stack's images."""
    from provisioning import docker_client

    if os.geteuid() != 0 or shutil.which("dockerd") is None or shutil.which("nsenter") is None:
        require_or_skip("a second dockerd", "starting one in a network namespace needs root, dockerd and nsenter")
    tls_dir = tmp_path_factory.mktemp("engine2-tls")
    tls = tls_files_make(address=ADDRESS)
    for file_name, text in {
        "ca.pem": tls.ca,
        "server-cert.pem": tls.server_cert,
        "server-key.pem": tls.server_key,
    }.items():
        path = tls_dir / file_name
        path.write_text(text)
        path.chmod(0o600)
    _stale_dockerd_stop()
    with netns.namespace(ADDRESS) as namespace:
        # Only the link: nothing the engine or its containers send can leave through the host.
        namespace.run(["ip", "route", "del", "default"])
        for args in (
            ["ip", "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ):
            done = namespace.run(args)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
        namespace.popen([sys.executable, "-c", NXDOMAIN_RESOLVER, ADDRESS])
        engine = SecondEngine(namespace=namespace, tls=tls, tls_dir=tls_dir)
        try:
            try:
                engine.start()
            except RuntimeError as exc:
                require_or_skip("a second dockerd", str(exc))
            label = f"shophosting.env={settings.STORE_OBJECT_PREFIX}"
            docker_client.labelled_objects_remove(label=label, base_url=engine.engine())  # a killed run's
            for image in _images_needed():
                if docker_client.image_exists(tag=image):
                    docker_client.image_copy(image=image, source=None, target=engine.engine())
            yield engine
        finally:
            if engine.process is not None and engine.process.poll() is None and engine.answers():
                docker_client.labelled_objects_remove(
                    label=f"shophosting.env={settings.STORE_OBJECT_PREFIX}", base_url=engine.engine()
                )
            engine.stop()


# --- The same engine over SSH -----------------------------------------------------------------------------


@dataclass
class SSHAccess:
    """An sshd inside the second engine's namespace on ADDRESS:22, and what the platform needs to use it: the
    engine URL, a client key it accepts and the known_hosts line pinning its host key."""

    url: str
    client_key: str = field(repr=False)
    known_hosts: str
    stranger_key: str = field(repr=False)  # a well-formed key sshd does not accept
    other_host_key_line: str = ""  # a known_hosts line for this address with another host's key

    def engine(self, **overrides):
        from stores.models import Engine

        fields = {"url": self.url, "ssh_key": self.client_key, "ssh_known_hosts": self.known_hosts, **overrides}
        return Engine(**fields)


def ssh_keypair() -> tuple[str, str]:
    """(OpenSSH private key, `ssh-ed25519 AAAA…` public key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    text = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return text, public.decode()


@pytest.fixture
def second_engine_ssh(second_engine, tmp_path):
    """sshd (Debian's openssh-server; bin/test installs it) in the second engine's namespace, letting root in
    with a key the test generates only; its sessions get DOCKER_HOST pointing at the second engine's socket, so
    `docker system dial-stdio` there reaches that engine, as on a host whose docker CLI uses its local engine."""
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
    if sshd is None or shutil.which("ssh") is None or shutil.which("docker") is None:
        require_or_skip(
            "sshd, ssh and the docker CLI", "Debian's openssh-server and openssh-client; bin/test installs them"
        )
    host_key, host_public = ssh_keypair()
    client_key, client_public = ssh_keypair()
    stranger_key, _ = ssh_keypair()
    _, other_host_public = ssh_keypair()
    files = {"host_key": host_key, "authorized_keys": client_public + "\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o600)
    config = tmp_path / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {ADDRESS}",
                "Port 22",
                f"HostKey {tmp_path / 'host_key'}",
                f"AuthorizedKeysFile {tmp_path / 'authorized_keys'}",
                f"PidFile {tmp_path / 'sshd.pid'}",
                "AllowUsers root",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",  # the key files are in pytest's temporary directory
                "PermitTTY no",
                "X11Forwarding no",
                "AllowTcpForwarding no",
                f"SetEnv DOCKER_HOST=unix://{SOCKET}",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    check = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"sshd refuses the test's configuration: {check.stderr.strip()}")
    log = (tmp_path / "sshd.log").open("w")
    process = subprocess.Popen(
        second_engine.namespace.command([sshd, "-D", "-e", "-f", str(config)]),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((ADDRESS, 22), timeout=1).close()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    said = (tmp_path / "sshd.log").read_text()
                    raise RuntimeError(f"sshd did not listen on {ADDRESS}:22: {said}") from exc
                time.sleep(0.05)
        yield SSHAccess(
            url=f"ssh://root@{ADDRESS}",
            client_key=client_key,
            known_hosts=f"{ADDRESS} {host_public}\n",
            stranger_key=stranger_key,
            other_host_key_line=f"{ADDRESS} {other_host_public}\n",
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
