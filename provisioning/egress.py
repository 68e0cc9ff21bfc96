"""The fence around every store's outbound traffic: the only module that runs iptables.

A store's containers may reach the internet (payment gateways, plugin downloads), and nothing of the
platform's or the host's: not another store, not the host itself (the platform's MariaDB and Redis, a tcp
Docker socket, SSH), not a private network, not link-local addresses such as a cloud's metadata service.

How: every store network's bridge is named `shs` + 10 hex characters (`bridge_name`), so one wildcard,
`shs+`, matches every store on the host, today's and tomorrow's, with no rule per store. Two chains of the
platform's own, refilled atomically (iptables-restore --noflush flushes only the chains it declares):

- `SHOPHOSTING-EGRESS`, jumped to first from Docker's `DOCKER-USER` (the FORWARD path; Docker leaves that
  chain's rules alone and keeps it ahead of its own) for traffic coming in from a store bridge:
  replies pass; traffic bridged inside one store network passes (web to db); traffic routed to another
  store's bridge is rejected (Docker's isolation chains drop it too, later and silently); the operator's
  exceptions and the host's DNS resolvers (port 53) pass; then link-local, private, shared, loopback,
  multicast and reserved ranges and `EGRESS_BLOCKED_EXTRA` are rejected; everything else, the internet,
  goes on to Docker's own rules, which let it out.
- `SHOPHOSTING-EGRESS-HOST`, jumped to first from INPUT, for what a store sends to the host itself (its
  bridge's gateway, or any other address of the host): replies pass, so do new connections to
  `EGRESS_HOST_PORTS` (80 and 443: nginx, which the internet reaches anyway, so a store can load its own
  pages, as WP-Cron does), and every other new connection is rejected, whatever address the service is
  bound to.

Rejected, not dropped: a store gets "No route to host" (ICMP admin-prohibited) at once instead of waiting
for a timeout. IPv4 only: the platform creates store networks without IPv6.

Where it runs: either here, with the machine's own iptables (`manage.py egress_apply`, root: the systemd unit
`shophosting-egress.service` runs it at boot and whenever dockerd restarts), or on any host through its
Docker API (`egress_apply --host NAME` / `--all-hosts`, the host registration check, the periodic drift check):
a short-lived helper container on that engine (`settings.EGRESS_IMAGE`, Debian's iptables) in the host's own
network namespace (network_mode=host) with NET_ADMIN and NET_RAW and no other capability runs the same
commands with the same rules text. Both paths go through one `Runner`, so the rules are built here only.
Re-applying never duplicates a rule; `--check` reports drift.
"""

import hashlib
import ipaddress
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from provisioning import docker_client
from provisioning.exceptions import ProvisioningError

BRIDGE_PREFIX = "shs"
STORE_BRIDGES = f"{BRIDGE_PREFIX}+"  # iptables' interface wildcard
FORWARD_CHAIN = "SHOPHOSTING-EGRESS"
HOST_CHAIN = "SHOPHOSTING-EGRESS-HOST"
DOCKER_CHAIN = "DOCKER-USER"  # Docker jumps here first from FORWARD and never touches its rules
REJECT = "-j REJECT --reject-with icmp-admin-prohibited"
# Never reachable from a store, whatever the settings say (EGRESS_ALLOWED may open single exceptions).
ALWAYS_BLOCKED = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # shared address space (carrier-grade NAT, some clouds' internal services)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local: cloud metadata services (169.254.169.254), some clouds' DNS
    "172.16.0.0/12",  # private: Docker's own networks among them
    "192.168.0.0/16",  # private
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the broadcast address
)
# Where the host's DNS resolvers are listed; Docker's embedded DNS forwards a store's lookups to them from
# the store's own network namespace, so a resolver on a private address (most clouds) needs port 53 open.
RESOLV_CONF_PATHS = ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf")
DNS_PORT = 53
COMMAND_TIMEOUT = 30


class EgressError(ProvisioningError):
    """iptables refused, is missing, or Docker's chain is not there; the message says which."""


def bridge_name(network_name: str) -> str:
    """The host interface of a store network: recognisable by its prefix, unique per network name, and within
    Linux's 15 characters."""
    return BRIDGE_PREFIX + hashlib.sha256(network_name.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Allowance:
    """One exception to the blocked ranges: a network, and a port (TCP and UDP) or every port."""

    network: ipaddress.IPv4Network
    port: int | None = None

    def rules(self, chain: str) -> list[str]:
        if self.port is None:
            return [f"-A {chain} -d {self.network} -j RETURN"]
        return [f"-A {chain} -d {self.network} -p {p} -m {p} --dport {self.port} -j RETURN" for p in ("tcp", "udp")]


@dataclass(frozen=True)
class FencePolicy:
    allowed: tuple[Allowance, ...]
    blocked: tuple[ipaddress.IPv4Network, ...]
    host_ports: tuple[int, ...]


def _network(value: str, setting: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value.strip(), strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{setting}: {value!r} is not an IPv4 address or network (CIDR): {exc}") from exc


def _port(value: str, setting: str, entry: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ImproperlyConfigured(f"{setting}: {entry!r} has no valid port ({value!r}; 1 to 65535)")
    return int(value)


def allowance_parse(entry: str, setting: str = "EGRESS_ALLOWED") -> Allowance:
    """`CIDR` or `CIDR:port` (an address alone is a /32): "10.0.0.25:587", "10.1.2.0/24"."""
    address, colon, port = entry.strip().partition(":")
    return Allowance(network=_network(address, setting), port=_port(port, setting, entry) if colon else None)


def resolvers_parse(text: str) -> list[ipaddress.IPv4Address]:
    """The IPv4 nameservers of a resolv.conf, loopback ones left out."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                address = ipaddress.IPv4Address(fields[1])
            except ValueError:
                continue  # IPv6: the store networks have none
            if not address.is_loopback and address not in found:
                found.append(address)
    return found


def host_resolvers(paths=RESOLV_CONF_PATHS) -> list[ipaddress.IPv4Address]:
    """The IPv4 nameservers this machine (and so Docker's embedded DNS) uses, loopback ones left out."""
    found = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        found += [address for address in resolvers_parse(text) if address not in found]
    return found


def policy_from_settings(resolvers: list[ipaddress.IPv4Address] | None = None) -> FencePolicy:
    """The fence the settings describe; a malformed entry raises ImproperlyConfigured naming it. `resolvers`:
    the DNS resolvers of the host the fence is for (None: this machine's)."""
    allowed = [allowance_parse(entry) for entry in settings.EGRESS_ALLOWED if entry.strip()]
    if settings.EGRESS_ALLOW_HOST_RESOLVERS:
        resolvers = host_resolvers() if resolvers is None else resolvers
        allowed += [Allowance(ipaddress.IPv4Network(address), DNS_PORT) for address in resolvers]
    blocked = [ipaddress.IPv4Network(cidr) for cidr in ALWAYS_BLOCKED]
    blocked += [_network(cidr, "EGRESS_BLOCKED_EXTRA") for cidr in settings.EGRESS_BLOCKED_EXTRA if cidr.strip()]
    host_ports = [
        _port(str(port).strip(), "EGRESS_HOST_PORTS", str(port)) for port in settings.EGRESS_HOST_PORTS if str(port)
    ]
    return FencePolicy(allowed=tuple(dict.fromkeys(allowed)), blocked=tuple(blocked), host_ports=tuple(host_ports))


def chain_rules(policy: FencePolicy) -> dict[str, list[str]]:
    """Each chain's rules, written exactly as `iptables -S` prints them back (so drift is a plain diff)."""
    forward = [
        f"-A {FORWARD_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        # Within one store network (web to db): bridged, not routed. Seen here only with br_netfilter.
        f"-A {FORWARD_CHAIN} -m physdev --physdev-is-bridged -j RETURN",
        # Routed from one store's bridge to another's: never, not even to an allowed range.
        f"-A {FORWARD_CHAIN} -o {STORE_BRIDGES} {REJECT}",
    ]
    for allowance in policy.allowed:
        forward += allowance.rules(FORWARD_CHAIN)
    forward += [f"-A {FORWARD_CHAIN} -d {network} {REJECT}" for network in policy.blocked]
    host = [f"-A {HOST_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    if policy.host_ports:
        ports = ",".join(str(port) for port in policy.host_ports)
        host.append(f"-A {HOST_CHAIN} -p tcp -m multiport --dports {ports} -j RETURN")
    host.append(f"-A {HOST_CHAIN} {REJECT}")
    return {FORWARD_CHAIN: forward, HOST_CHAIN: host}


# (chain that jumps, the jump rule): each must be the first rule of its chain, exactly once.
JUMPS = (
    (DOCKER_CHAIN, f"-A {DOCKER_CHAIN} -i {STORE_BRIDGES} -j {FORWARD_CHAIN}"),
    ("INPUT", f"-A INPUT -i {STORE_BRIDGES} -j {HOST_CHAIN}"),
)


# --- iptables ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """What one iptables command gave: its exit code and output."""

    returncode: int
    stdout: str
    stderr: str


# Runs iptables (or, with restore input, iptables-restore) with these arguments where the fence is wanted:
# this machine (`local_runner`) or a host through its engine (`host_runner`).
Runner = Callable[[list[str], str | None], Ran]


def local_runner(args: list[str], restore_input: str | None) -> Ran:
    """iptables of this machine (settings.EGRESS_IPTABLES), as root."""
    command = list(settings.EGRESS_IPTABLES)
    if restore_input is not None:
        command[-1] += "-restore"
    command += args
    try:
        done = subprocess.run(  # noqa: S603 - an argument list from settings, no shell
            command, input=restore_input, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
    except FileNotFoundError as exc:
        raise EgressError(f"{command[0]} is not installed (Debian package iptables): {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise EgressError(f"{' '.join(command)} did not finish within {COMMAND_TIMEOUT} s") from exc
    return Ran(done.returncode, done.stdout, done.stderr)


def _iptables(*args: str, runner: Runner, check: bool = True, restore_input: str | None = None) -> Ran:
    arguments = ["-w", "10", *args]  # wait for the xtables lock that dockerd may hold
    done = runner(arguments, restore_input)
    if check and done.returncode != 0:
        what = "iptables-restore" if restore_input is not None else "iptables"
        raise EgressError(f"{what} {' '.join(arguments)} failed: {(done.stderr or done.stdout).strip()}")
    return done


def _rules(chain: str, runner: Runner) -> list[str] | None:
    """The chain's rules as `iptables -S` prints them; None when the chain does not exist."""
    listed = _iptables("-S", chain, runner=runner, check=False)
    if listed.returncode != 0:
        return None
    return [line for line in listed.stdout.splitlines() if line.startswith("-A ")]


def _jump_ensure(chain: str, jump: str, runner: Runner) -> None:
    """`jump` first in `chain`, once: insert it first, then delete other copies from the last up, so there is
    never a moment without it."""
    rules = _rules(chain, runner) or []
    if rules[:1] != [jump]:
        _iptables("-I", chain, "1", *jump.split()[2:], runner=runner)
        rules = [jump, *rules]
    for number in sorted((i + 1 for i, rule in enumerate(rules) if rule == jump and i > 0), reverse=True):
        _iptables("-D", chain, str(number), runner=runner)


def fence_apply(policy: FencePolicy | None = None, *, runner: Runner = local_runner) -> list[str]:
    """Install or refresh the fence; returns the rules in force. Idempotent."""
    policy = policy or policy_from_settings()
    if _rules(DOCKER_CHAIN, runner) is None:
        raise EgressError(
            f"the chain {DOCKER_CHAIN} does not exist: start dockerd (with iptables enabled, its default) first"
        )
    rules = chain_rules(policy)
    declarations = "".join(f":{chain} - [0:0]\n" for chain in rules)  # created if missing, else flushed
    body = "".join(line + "\n" for chain_lines in rules.values() for line in chain_lines)
    _iptables("--noflush", runner=runner, restore_input=f"*filter\n{declarations}{body}COMMIT\n")
    for chain, jump in JUMPS:
        _jump_ensure(chain, jump, runner)
    return [rule for chain in rules.values() for rule in chain] + [jump for _, jump in JUMPS]


def fence_drift(policy: FencePolicy | None = None, *, runner: Runner = local_runner) -> list[str]:
    """What differs between the host's rules and the fence the settings describe; empty when none does."""
    policy = policy or policy_from_settings()
    problems = []
    for chain, expected in chain_rules(policy).items():
        actual = _rules(chain, runner)
        if actual is None:
            problems.append(f"chain {chain} is missing")
            continue
        differences = [f"missing in {chain}: {rule}" for rule in expected if rule not in actual]
        differences += [f"unexpected in {chain}: {rule}" for rule in actual if rule not in expected]
        if not differences and actual != expected:
            differences.append(f"the rules of {chain} are out of order")
        problems += differences
    for chain, jump in JUMPS:
        rules = _rules(chain, runner)
        if rules is None:
            problems.append(f"chain {chain} is missing")
        elif rules[:1] != [jump] or rules.count(jump) != 1:
            problems.append(f"{chain} must jump to the fence first and once ({jump}); it has {rules.count(jump)}")
    return problems


def fence_remove(*, runner: Runner = local_runner) -> None:
    """Take the fence away (stores then reach everything Docker lets them). Idempotent."""
    for chain, jump in JUMPS:
        while jump in (_rules(chain, runner) or []):
            _iptables("-D", chain, *jump.split()[2:], runner=runner)
    for chain in (FORWARD_CHAIN, HOST_CHAIN):
        if _rules(chain, runner) is not None:
            _iptables("-F", chain, runner=runner)
            _iptables("-X", chain, runner=runner)


# --- On a host, through its Docker API -----------------------------------------------------------------
# The helper gets these capabilities and no other: iptables-nft needs NET_ADMIN, iptables-legacy also NET_RAW.
HELPER_CAPABILITIES = ("NET_ADMIN", "NET_RAW")
# Debian's two iptables: the fence must go where dockerd put DOCKER-USER, so the helper asks each in turn.
IPTABLES_VARIANTS = ("iptables-nft", "iptables-legacy")


@dataclass(frozen=True)
class HostIptables:
    """The iptables of one host, reached through a helper container on its engine."""

    runner: Runner
    variant: str  # iptables-nft or iptables-legacy: the one holding dockerd's chains
    resolvers: list[ipaddress.IPv4Address]  # the host's own, from its resolv.conf

    def policy(self) -> FencePolicy:
        return policy_from_settings(resolvers=self.resolvers)


def _helper_exec(name: str, engine, command: list[str], environment: dict[str, str] | None = None) -> Ran:
    code, output = docker_client.container_exec(name=name, command=command, environment=environment, base_url=engine)
    return Ran(code, output, output)  # the engine hands back stdout and stderr as one stream


@contextmanager
def host_iptables(engine) -> Iterator[HostIptables]:
    """A helper container on the engine `engine` (a stores.models.Engine: `host.engine`) in the host's network
    namespace, for as long as the block runs; it is removed afterwards (and exits on its own after
    EGRESS_HELPER_LIFETIME seconds if this process dies first). The image is copied to the host from the
    platform's engine when the host lacks it."""
    image = settings.EGRESS_IMAGE
    name = f"{settings.STORE_OBJECT_PREFIX}-egress-{uuid.uuid4().hex[:8]}"
    labels = {"shophosting.env": settings.STORE_OBJECT_PREFIX, "shophosting.egress-helper": "1"}
    if docker_client.image_id(tag=image, base_url=engine) is None:
        docker_client.image_copy(image=image, source=None, target=engine)
    docker_client.host_network_helper_start(
        name=name,
        image=image,
        command=["sleep", str(settings.EGRESS_HELPER_LIFETIME)],
        labels=labels,
        capabilities=list(HELPER_CAPABILITIES),
        base_url=engine,
    )
    try:
        variant = IPTABLES_VARIANTS[0]
        for candidate in IPTABLES_VARIANTS:
            if _helper_exec(name, engine, [candidate, "-w", "10", "-S", DOCKER_CHAIN]).returncode == 0:
                variant = candidate
                break
        resolv_conf = _helper_exec(name, engine, ["cat", "/etc/resolv.conf"])  # the host's: network_mode=host
        resolvers = resolvers_parse(resolv_conf.stdout) if resolv_conf.returncode == 0 else []

        def runner(args: list[str], restore_input: str | None) -> Ran:
            if restore_input is None:
                return _helper_exec(name, engine, [variant, *args])
            # The engine's exec has no stdin here: the rules text travels in the environment, never a shell line.
            pipe = 'printf "%s" "$EGRESS_RULES" | "$@"'
            return _helper_exec(
                name, engine, ["sh", "-c", pipe, "sh", f"{variant}-restore", *args], {"EGRESS_RULES": restore_input}
            )

        yield HostIptables(runner=runner, variant=variant, resolvers=resolvers)
    finally:
        try:
            docker_client.container_remove(name=name, base_url=engine)
        except ProvisioningError:
            pass  # it exits and goes by itself (auto-remove) after its lifetime


def host_fence_apply(engine) -> list[str]:
    """Install or refresh the fence on the host whose engine is `engine`; the rules in force."""
    with host_iptables(engine) as host:
        return fence_apply(host.policy(), runner=host.runner)


def host_fence_drift(engine) -> list[str]:
    """What differs on that host from the fence the settings describe; empty when nothing does."""
    with host_iptables(engine) as host:
        return fence_drift(host.policy(), runner=host.runner)


def host_fence_remove(engine) -> None:
    with host_iptables(engine) as host:
        fence_remove(runner=host.runner)


def unfenced_store_networks(*, base_url: docker_client.EngineRef = None) -> list[str]:
    """Store networks on the engine whose bridge the fence does not match: created before the fence existed.
    They get a fenced bridge when they are created again."""
    networks = docker_client.networks_by_label(label="shophosting.store", base_url=base_url)
    return sorted(f"{n.name} ({n.bridge})" for n in networks if not n.bridge.startswith(BRIDGE_PREFIX))
