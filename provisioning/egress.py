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

Applied by `manage.py egress_apply` (root) on each engine's host: the systemd unit
`shophosting-egress.service` runs it at boot and whenever dockerd restarts. Re-applying never duplicates a
rule; `--check` reports drift.
"""

import hashlib
import ipaddress
import subprocess
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


def host_resolvers(paths=RESOLV_CONF_PATHS) -> list[ipaddress.IPv4Address]:
    """The IPv4 nameservers the host (and so Docker's embedded DNS) uses, loopback ones left out."""
    found = []
    for path in paths:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                try:
                    address = ipaddress.IPv4Address(fields[1])
                except ValueError:
                    continue  # IPv6: the store networks have none
                if not address.is_loopback and address not in found:
                    found.append(address)
    return found


def policy_from_settings() -> FencePolicy:
    """The fence the settings describe; a malformed entry raises ImproperlyConfigured naming it."""
    allowed = [allowance_parse(entry) for entry in settings.EGRESS_ALLOWED if entry.strip()]
    if settings.EGRESS_ALLOW_HOST_RESOLVERS:
        allowed += [Allowance(ipaddress.IPv4Network(address), DNS_PORT) for address in host_resolvers()]
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


def _iptables(*args: str, check: bool = True, restore_input: str | None = None) -> subprocess.CompletedProcess:
    command = list(settings.EGRESS_IPTABLES)
    if restore_input is not None:
        command[-1] += "-restore"
    command += ["-w", "10", *args]  # wait for the xtables lock that dockerd may hold
    try:
        done = subprocess.run(  # noqa: S603 - an argument list from settings, no shell
            command, input=restore_input, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
    except FileNotFoundError as exc:
        raise EgressError(f"{command[0]} is not installed (Debian package iptables): {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise EgressError(f"{' '.join(command)} did not finish within {COMMAND_TIMEOUT} s") from exc
    if check and done.returncode != 0:
        raise EgressError(f"{' '.join(command)} failed: {(done.stderr or done.stdout).strip()}")
    return done


def _rules(chain: str) -> list[str] | None:
    """The chain's rules as `iptables -S` prints them; None when the chain does not exist."""
    listed = _iptables("-S", chain, check=False)
    if listed.returncode != 0:
        return None
    return [line for line in listed.stdout.splitlines() if line.startswith("-A ")]


def _jump_ensure(chain: str, jump: str) -> None:
    """`jump` first in `chain`, once: insert it first, then delete other copies from the last up, so there is
    never a moment without it."""
    rules = _rules(chain) or []
    if rules[:1] != [jump]:
        _iptables("-I", chain, "1", *jump.split()[2:])
        rules = [jump, *rules]
    for number in sorted((i + 1 for i, rule in enumerate(rules) if rule == jump and i > 0), reverse=True):
        _iptables("-D", chain, str(number))


def fence_apply(policy: FencePolicy | None = None) -> list[str]:
    """Install or refresh the fence; returns the rules in force. Idempotent."""
    policy = policy or policy_from_settings()
    if _rules(DOCKER_CHAIN) is None:
        raise EgressError(
            f"the chain {DOCKER_CHAIN} does not exist: start dockerd (with iptables enabled, its default) first"
        )
    rules = chain_rules(policy)
    declarations = "".join(f":{chain} - [0:0]\n" for chain in rules)  # created if missing, else flushed
    body = "".join(line + "\n" for chain_lines in rules.values() for line in chain_lines)
    _iptables("--noflush", restore_input=f"*filter\n{declarations}{body}COMMIT\n")
    for chain, jump in JUMPS:
        _jump_ensure(chain, jump)
    return [rule for chain in rules.values() for rule in chain] + [jump for _, jump in JUMPS]


def fence_drift(policy: FencePolicy | None = None) -> list[str]:
    """What differs between the host's rules and the fence the settings describe; empty when none does."""
    policy = policy or policy_from_settings()
    problems = []
    for chain, expected in chain_rules(policy).items():
        actual = _rules(chain)
        if actual is None:
            problems.append(f"chain {chain} is missing")
            continue
        differences = [f"missing in {chain}: {rule}" for rule in expected if rule not in actual]
        differences += [f"unexpected in {chain}: {rule}" for rule in actual if rule not in expected]
        if not differences and actual != expected:
            differences.append(f"the rules of {chain} are out of order")
        problems += differences
    for chain, jump in JUMPS:
        rules = _rules(chain)
        if rules is None:
            problems.append(f"chain {chain} is missing")
        elif rules[:1] != [jump] or rules.count(jump) != 1:
            problems.append(f"{chain} must jump to the fence first and once ({jump}); it has {rules.count(jump)}")
    return problems


def fence_remove() -> None:
    """Take the fence away (stores then reach everything Docker lets them). Idempotent."""
    for chain, jump in JUMPS:
        while jump in (_rules(chain) or []):
            _iptables("-D", chain, *jump.split()[2:])
    for chain in (FORWARD_CHAIN, HOST_CHAIN):
        if _rules(chain) is not None:
            _iptables("-F", chain)
            _iptables("-X", chain)


def unfenced_store_networks(*, base_url: docker_client.EngineRef = None) -> list[str]:
    """Store networks on the engine whose bridge the fence does not match: created before the fence existed.
    They get a fenced bridge when they are created again."""
    networks = docker_client.networks_by_label(label="shophosting.store", base_url=base_url)
    return sorted(f"{n.name} ({n.bridge})" for n in networks if not n.bridge.startswith(BRIDGE_PREFIX))
