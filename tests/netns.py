"""A network namespace a test creates, with one address that the host and the store containers reach: where a
test runs a listener that stands for something outside the machine (an SMTP relay, "the internet").

The namespace's end of a veth pair holds `address`; the host's end holds `host_address`, the other end of a
point-to-point link, so the host routes `address` there and the engine's masquerading (which needs an address
on the outgoing interface) lets containers reach it too. Everything is removed on exit, also after a failure,
and a leftover of the same name from an interrupted run is removed first. Needs root (`ip`, `nsenter`).

    with network_namespace("shmail", address="198.51.100.25", host_address="198.51.100.24") as ns:
        sink = ns.start(["/usr/bin/python3", "sink.py"], ready="listening")
"""

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

NETNS_DIR = "/run/netns"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


@dataclass
class Namespace:
    name: str
    address: str
    host_address: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"{NETNS_DIR}/{self.name}"

    def command(self, argv: list[str]) -> list[str]:
        # nsenter, not `ip netns exec`: the latter remounts /sys, which a process inside may need.
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def start(
        self, argv: list[str], *, ready: str | None = None, env: dict[str, str] | None = None, timeout: float = 10
    ) -> subprocess.Popen:
        """A process inside the namespace, stopped on exit. With `ready`, waits until a line of its output
        (stdout and stderr) contains it, and fails with that output if it does not come in `timeout` s."""
        process = subprocess.Popen(
            self.command(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.processes.append(process)
        if ready is not None:
            seen = _read_until(process, ready, timeout)
            if ready not in seen:
                process.kill()
                process.wait(timeout=5)
                raise RuntimeError(f"{argv[0]} in namespace {self.name} did not start: {seen}")
        return process

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), capture_output=True, text=True, timeout=30, **kwargs)


def _read_until(process: subprocess.Popen, text: str, timeout: float) -> str:
    """The process's output up to the first line containing `text`, or all it said until `timeout` or its
    exit. A thread reads (a select() on the buffered pipe would miss lines already in the buffer) and keeps
    draining the pipe afterwards, so a chatty process never blocks on a full pipe."""
    import queue
    import threading

    lines: queue.Queue = queue.Queue()

    def drain() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:  # it exited
            break
        seen += line
    return seen


def _remove(name: str, host_veth: str) -> None:
    _ip("link", "del", host_veth, check=False)  # deletes both ends of the pair
    _ip("netns", "del", name, check=False)


@contextmanager
def network_namespace(name: str, *, address: str, host_address: str) -> Iterator[Namespace]:
    """A namespace `name` (short: interface names take 15 characters) reachable at `address`."""
    host_veth, inner_veth = f"{name}-h"[:15], f"{name}-n"[:15]
    _remove(name, host_veth)
    namespace = Namespace(name, address, host_address)
    try:
        _ip("netns", "add", name)
        _ip("link", "add", host_veth, "type", "veth", "peer", "name", inner_veth)
        _ip("link", "set", inner_veth, "netns", name)
        _ip("addr", "add", f"{host_address}/32", "peer", f"{address}/32", "dev", host_veth)
        _ip("link", "set", host_veth, "up")
        inside = ["ip", "-n", name]
        for args in (
            ["link", "set", "lo", "up"],
            ["addr", "add", f"{address}/32", "peer", f"{host_address}/32", "dev", inner_veth],
            ["link", "set", inner_veth, "up"],
            ["route", "add", "default", "via", host_address],
        ):
            subprocess.run([*inside, *args], capture_output=True, text=True, check=True, timeout=10)
        yield namespace
    finally:
        for process in namespace.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        _remove(name, host_veth)
