"""Stand-in machines for tests: a network namespace holding one address, linked to the host by a veth pair,
with programs running inside it. The host (and so every container whose traffic the host routes) reaches
the address through that link; nothing leaves the machine.

    with netns.namespace("198.51.100.10") as internet:          # "the internet", TEST-NET-2
        internet.http_listener(port=80, body=b"hello")
        ...                                                     # a store fetches http://198.51.100.10/

Each namespace is a /30 link: the host's end takes the other usable address of the /30 around `address`
(198.51.100.9 here), so the host gets one connected route for that /30 and nothing else changes. Names
derive from the address, so a namespace left behind by a killed run is replaced, not duplicated. Everything
(processes, namespace, veth, route) goes when the `with` block ends, also when it fails.

Needs root, `ip` (iproute2) and `nsenter` (util-linux). Run tests that use it under the Docker tests' lock.
"""

import hashlib
import ipaddress
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

NAME_PREFIX = "shtest-"
VETH_PREFIX = "nsv"  # never "shs": the platform's fence matches store bridges by that prefix


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _names(address: str) -> tuple[str, str, str]:
    token = hashlib.sha256(address.encode()).hexdigest()[:8]
    return f"{NAME_PREFIX}{token}", f"{VETH_PREFIX}{token}h", f"{VETH_PREFIX}{token}n"


def link_addresses(address: str, prefix: int = 30) -> tuple[str, str]:
    """(the namespace's address, the host's end) of the link around `address`."""
    link = ipaddress.IPv4Network(f"{address}/{prefix}", strict=False)
    hosts = [str(host) for host in link.hosts()]
    if address not in hosts:
        raise ValueError(f"{address} is the network or broadcast address of {link}; pick another")
    return address, next(host for host in hosts if host != address)


@dataclass
class Namespace:
    name: str
    address: str  # inside the namespace
    host_address: str  # the host's end of the link
    prefix: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    def command(self, argv: list[str]) -> list[str]:
        # nsenter, not `ip netns exec`: the latter remounts /sys, which some programs need as it is.
        return ["nsenter", f"--net=/run/netns/{self.name}", *argv]

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 30)
        return subprocess.run(self.command(argv), **kwargs)

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """A program running inside the namespace until the namespace goes."""
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.PIPE)
        process = subprocess.Popen(self.command(argv), **kwargs)
        self.processes.append(process)
        return process

    def wait_listening(self, port: int, process: subprocess.Popen | None = None, timeout: float = 10) -> None:
        """Until a TCP connection from the host to address:port succeeds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.address, port), timeout=1).close()
                return
            except OSError as exc:
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"the listener exited: {process.stderr.read().decode()[-2000:]}") from exc
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nothing listens on {self.address}:{port} after {timeout} s") from exc
                time.sleep(0.05)

    def http_listener(self, *, port: int = 80, body: bytes = b"ok\n") -> subprocess.Popen:
        """An HTTP server on address:port answering every GET with `body` (200, text/plain)."""
        code = textwrap.dedent(
            """
            import http.server, socketserver, sys
            address, port, body = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
            class Server(http.server.ThreadingHTTPServer):
                def server_bind(self):  # without HTTPServer's reverse lookup, which waits on a DNS unreachable here
                    socketserver.TCPServer.server_bind(self)
                    self.server_name, self.server_port = self.server_address[:2]
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *args):
                    pass
            Server((address, port), Handler).serve_forever()
            """
        )
        process = self.popen([sys.executable, "-c", code, self.address, str(port), body.decode()])
        self.wait_listening(port, process)
        return process


@contextmanager
def namespace(address: str, *, prefix: int = 30):
    """A namespace holding `address`, linked to the host; removed with everything in it on exit."""
    name, host_veth, inner_veth = _names(address)
    inside, host_end = link_addresses(address, prefix)
    _remove(name, host_veth)  # what a killed run left
    ns = Namespace(name=name, address=inside, host_address=host_end, prefix=prefix)
    try:
        _ip("netns", "add", name)
        _ip("link", "add", host_veth, "type", "veth", "peer", "name", inner_veth)
        _ip("link", "set", inner_veth, "netns", name)
        _ip("addr", "add", f"{host_end}/{prefix}", "dev", host_veth)
        _ip("link", "set", host_veth, "up")
        for args in (
            ["addr", "add", f"{inside}/{prefix}", "dev", inner_veth],
            ["link", "set", inner_veth, "up"],
            ["link", "set", "lo", "up"],
            ["route", "add", "default", "via", host_end],
        ):
            _ip("-n", name, *args)
        yield ns
    finally:
        for process in ns.processes:
            process.terminate()
        for process in ns.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _remove(name, host_veth)


@contextmanager
def private_namespace(label: str):
    """A namespace with only its loopback, linked to nothing: for running a firewall or a program in
    isolation from the host's own. `label` names it (a few letters)."""
    name = f"{NAME_PREFIX}{label}"
    _remove(name, "")
    ns = Namespace(name=name, address="127.0.0.1", host_address="", prefix=8)
    try:
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
        yield ns
    finally:
        for process in ns.processes:
            process.kill()
            process.wait()
        _remove(name, "")


def _remove(name: str, host_veth: str) -> None:
    _ip("netns", "del", name, check=False)  # takes its end of the veth, and so the pair, with it
    if host_veth:
        _ip("link", "del", host_veth, check=False)


@contextmanager
def host_listener(address: str, port: int = 0):
    """A TCP socket of the host's own, listening on `address` (never 0.0.0.0): connections complete in the
    kernel's backlog, so "connected" means the host accepted it. Yields the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(16)
        yield listener.getsockname()[1]
