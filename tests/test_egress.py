"""The fence around the stores' outbound traffic (provisioning/egress.py, README "Outbound traffic of the
stores").

On the real engine: two live stores and three stand-in machines in network namespaces the test creates
(tests/netns.py): "the internet" on a public-looking address, a metadata service on 169.254.169.254 and a
private service on 10.213.0.1, plus a listener of the host itself on the store network's gateway. Without the
fence store A reaches all of them but store B's database (Docker's own isolation); with it, WordPress fetches
from the internet and every other connection is refused at once, while the store itself keeps working.

The rules themselves are checked in a private network namespace of the test's own, with real iptables:
installed once however often they are applied, drift reported by `egress_apply --check` and repaired,
and bad settings refused with the setting's name.
"""

import ipaddress
import json
import os
import subprocess
from contextlib import ExitStack

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from provisioning import docker_client, egress
from provisioning.stacks.woocommerce import wordpress_outbound_http
from tests import netns
from tests.conftest import require_or_skip, require_tool
from tests.test_confinement import provision
from tests.test_object_cache import WORDPRESS_LOAD
from tests.test_provisioning import fetch

INTERNET = "198.51.100.10"  # TEST-NET-2: public-looking, never routed on the internet
METADATA = "169.254.169.254"
PRIVATE = "10.213.0.1"
INTERNET_BODY = "the internet says hello"
EHOSTUNREACH, ECONNREFUSED = 113, 111  # what REJECT icmp-admin-prohibited and a closed port give connect()

# What a probe from a store container runs: a raw TCP connect, as code in a store that ignores WordPress's
# own HTTP settings would make.
CONNECT_PROBE = (
    "$t = microtime(true); $s = @fsockopen(getenv('PROBE_HOST'), (int) getenv('PROBE_PORT'), $errno, $error,"
    " (float) getenv('PROBE_TIMEOUT'));"
    " echo json_encode(['connected' => (bool) $s, 'errno' => $errno, 'error' => $error,"
    " 'seconds' => microtime(true) - $t]);"
)


def need_root_network_tools() -> None:
    if os.geteuid() != 0:
        require_or_skip("root", "network namespaces and iptables need root; bin/test runs as root")
    for tool in ("ip", "nsenter", "iptables", "iptables-restore"):
        require_tool(tool)


# --- the rules, in a firewall of the test's own ---------------------------------------------------------


@pytest.fixture
def firewall(settings):
    """iptables in a private network namespace, with Docker's DOCKER-USER chain as dockerd leaves it; the
    platform's settings point the fence there, so the host's own rules are never touched."""
    need_root_network_tools()
    with netns.private_namespace("egress") as ns:
        settings.EGRESS_IPTABLES = ns.command(["iptables"])
        settings.EGRESS_MANAGED = True
        settings.EGRESS_ALLOWED = ["10.0.0.25:587", "192.168.7.0/24"]
        settings.EGRESS_BLOCKED_EXTRA = ["203.0.113.0/24"]
        settings.EGRESS_HOST_PORTS = ["80", "443"]
        settings.EGRESS_ALLOW_HOST_RESOLVERS = False
        iptables(ns, "-N", "DOCKER-USER")
        iptables(ns, "-A", "DOCKER-USER", "-j", "RETURN")
        yield ns


def iptables(ns, *args: str) -> str:
    done = ns.run(["iptables", "-w", "10", *args])
    assert done.returncode == 0, done.stderr
    return done.stdout


def rules(ns, chain: str) -> list[str]:
    return [line for line in iptables(ns, "-S", chain).splitlines() if line.startswith("-A ")]


def chains(ns) -> set[str]:
    return {line.split()[1] for line in iptables(ns, "-S").splitlines() if line.startswith("-N ")}


REJECT = "-j REJECT --reject-with icmp-admin-prohibited"
EXPECTED_FORWARD = [
    "-A SHOPHOSTING-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
    "-A SHOPHOSTING-EGRESS -m physdev --physdev-is-bridged -j RETURN",
    f"-A SHOPHOSTING-EGRESS -o shs+ {REJECT}",
    "-A SHOPHOSTING-EGRESS -d 10.0.0.25/32 -p tcp -m tcp --dport 587 -j RETURN",
    "-A SHOPHOSTING-EGRESS -d 10.0.0.25/32 -p udp -m udp --dport 587 -j RETURN",
    "-A SHOPHOSTING-EGRESS -d 192.168.7.0/24 -j RETURN",
    f"-A SHOPHOSTING-EGRESS -d 0.0.0.0/8 {REJECT}",
    f"-A SHOPHOSTING-EGRESS -d 10.0.0.0/8 {REJECT}",
    f"-A SHOPHOSTING-EGRESS -d 100.64.0.0/10 {REJECT}",
    f"-A SHOPHOSTING-EGRESS -d 127.0.0.0/8 {REJECT}",
    f"-A SHOPHOSTING-EGRESS -d 169.254.0.0/16 {REJECT}",
    f"-A SHOPHOSTING-EGRESS -d 172.16.0.0/12 {REJECT}",
    f"-A SHOPHOSTING-EGRESS -d 192.168.0.0/16 {REJECT}",
    f"-A SHOPHOSTING-EGRESS -d 224.0.0.0/4 {REJECT}",
    f"-A SHOPHOSTING-EGRESS -d 240.0.0.0/4 {REJECT}",
    f"-A SHOPHOSTING-EGRESS -d 203.0.113.0/24 {REJECT}",
]
EXPECTED_HOST = [
    "-A SHOPHOSTING-EGRESS-HOST -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
    "-A SHOPHOSTING-EGRESS-HOST -p tcp -m multiport --dports 80,443 -j RETURN",
    f"-A SHOPHOSTING-EGRESS-HOST {REJECT}",
]
DOCKER_JUMP = "-A DOCKER-USER -i shs+ -j SHOPHOSTING-EGRESS"
INPUT_JUMP = "-A INPUT -i shs+ -j SHOPHOSTING-EGRESS-HOST"


@pytest.mark.docker
def test_the_fence_is_installed_once_however_often_it_is_applied(firewall, capsys):
    call_command("egress_apply")
    call_command("egress_apply")

    assert rules(firewall, "SHOPHOSTING-EGRESS") == EXPECTED_FORWARD
    assert rules(firewall, "SHOPHOSTING-EGRESS-HOST") == EXPECTED_HOST
    # First in Docker's chain (ahead of its RETURN) and in INPUT, once each.
    assert rules(firewall, "DOCKER-USER") == [DOCKER_JUMP, "-A DOCKER-USER -j RETURN"]
    assert rules(firewall, "INPUT") == [INPUT_JUMP]
    assert egress.fence_drift() == []
    assert "the fence is in place (21 rules)" in capsys.readouterr().out


@pytest.mark.docker
def test_check_reports_drift_and_apply_repairs_it(firewall, settings, capsys):
    call_command("egress_apply")
    call_command("egress_apply", "--check")
    assert capsys.readouterr().out.splitlines()[-1] == "the fence is in place"

    # Someone deletes the metadata rule, adds one of their own, and a second jump; something (a new Docker
    # network, a ufw reload) puts a rule ahead of the fence in DOCKER-USER.
    iptables(firewall, "-D", "SHOPHOSTING-EGRESS", "-d", "169.254.0.0/16", *REJECT.split())
    iptables(firewall, "-A", "SHOPHOSTING-EGRESS", "-d", "198.51.100.0/24", "-j", "RETURN")
    iptables(firewall, "-A", "INPUT", "-i", "shs+", "-j", "SHOPHOSTING-EGRESS-HOST")
    iptables(firewall, "-I", "DOCKER-USER", "1", "-i", "eth9", "-j", "ACCEPT")

    with pytest.raises(CommandError, match=r"the fence differs from the settings \(4\)"):
        call_command("egress_apply", "--check")
    report = capsys.readouterr().out
    assert f"missing in SHOPHOSTING-EGRESS: -A SHOPHOSTING-EGRESS -d 169.254.0.0/16 {REJECT}" in report
    assert "unexpected in SHOPHOSTING-EGRESS: -A SHOPHOSTING-EGRESS -d 198.51.100.0/24 -j RETURN" in report
    assert "INPUT must jump to the fence first and once" in report and "it has 2" in report
    assert "DOCKER-USER must jump to the fence first and once" in report

    call_command("egress_apply")
    call_command("egress_apply", "--check")
    assert rules(firewall, "SHOPHOSTING-EGRESS") == EXPECTED_FORWARD
    assert rules(firewall, "INPUT") == [INPUT_JUMP]
    # The foreign rule stays (the fence owns only its own chains and jumps), behind the fence.
    assert rules(firewall, "DOCKER-USER") == [
        DOCKER_JUMP,
        "-A DOCKER-USER -i eth9 -j ACCEPT",
        "-A DOCKER-USER -j RETURN",
    ]

    # A changed setting is drift too, until applied.
    settings.EGRESS_ALLOWED = ["10.0.0.25:465"]
    smtps = "-A SHOPHOSTING-EGRESS -d 10.0.0.25/32 -p tcp -m tcp --dport 465 -j RETURN"
    assert f"missing in SHOPHOSTING-EGRESS: {smtps}" in egress.fence_drift()


@pytest.mark.docker
def test_remove_takes_the_fence_away_and_dry_run_and_unmanaged_touch_nothing(firewall, settings, capsys):
    call_command("egress_apply", "--dry-run")
    printed = capsys.readouterr().out.splitlines()
    assert printed == [*EXPECTED_FORWARD, *EXPECTED_HOST, DOCKER_JUMP, INPUT_JUMP]
    assert not {"SHOPHOSTING-EGRESS", "SHOPHOSTING-EGRESS-HOST"} & chains(firewall)

    settings.EGRESS_MANAGED = False
    call_command("egress_apply")
    assert "not managed here" in capsys.readouterr().out
    assert not {"SHOPHOSTING-EGRESS", "SHOPHOSTING-EGRESS-HOST"} & chains(firewall)

    settings.EGRESS_MANAGED = True
    call_command("egress_apply")
    call_command("egress_apply", "--remove")
    call_command("egress_apply", "--remove")  # idempotent
    assert not {"SHOPHOSTING-EGRESS", "SHOPHOSTING-EGRESS-HOST"} & chains(firewall)
    assert rules(firewall, "DOCKER-USER") == ["-A DOCKER-USER -j RETURN"]
    assert rules(firewall, "INPUT") == []


@pytest.mark.docker
def test_apply_refuses_a_host_where_dockers_chain_is_missing(settings):
    need_root_network_tools()
    settings.EGRESS_MANAGED = True
    with netns.private_namespace("egress-nodocker") as ns:
        settings.EGRESS_IPTABLES = ns.command(["iptables"])
        with pytest.raises(CommandError, match="the chain DOCKER-USER does not exist: start dockerd"):
            call_command("egress_apply")
        assert not {"SHOPHOSTING-EGRESS", "SHOPHOSTING-EGRESS-HOST"} & chains(ns)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("EGRESS_ALLOWED", ["10.0.0.300/32"], "EGRESS_ALLOWED: '10.0.0.300/32' is not an IPv4 address or network"),
        ("EGRESS_ALLOWED", ["10.0.0.25:70000"], "EGRESS_ALLOWED: '10.0.0.25:70000' has no valid port"),
        ("EGRESS_ALLOWED", ["smtp.example.com:587"], "EGRESS_ALLOWED: 'smtp.example.com' is not an IPv4 address"),
        ("EGRESS_BLOCKED_EXTRA", ["10.0.0.0/33"], "EGRESS_BLOCKED_EXTRA: '10.0.0.0/33' is not an IPv4 address"),
        ("EGRESS_HOST_PORTS", ["https"], "EGRESS_HOST_PORTS: 'https' has no valid port"),
    ],
)
def test_bad_settings_are_refused_with_the_settings_name(settings, setting, value, message):
    settings.EGRESS_MANAGED = True
    settings.EGRESS_IPTABLES = ["/nonexistent/iptables"]  # never reached: the settings are read first
    setattr(settings, setting, value)
    for options in ([], ["--check"], ["--dry-run"]):
        with pytest.raises(CommandError, match="bad egress settings: " + message.replace("(", r"\(")):
            call_command("egress_apply", *options)


def test_a_missing_iptables_is_named(settings):
    settings.EGRESS_MANAGED = True
    settings.EGRESS_IPTABLES = ["/nonexistent/iptables"]
    with pytest.raises(CommandError, match=r"/nonexistent/iptables is not installed \(Debian package iptables\)"):
        call_command("egress_apply")


def test_the_hosts_resolvers_get_port_53_and_bridge_names_fit_linux(settings, tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# generated\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver fd00::1\nsearch x\n")
    assert egress.host_resolvers([str(resolv), str(tmp_path / "missing")]) == [ipaddress.IPv4Address("10.255.255.53")]
    settings.EGRESS_ALLOWED, settings.EGRESS_ALLOW_HOST_RESOLVERS = [], True
    resolvers = egress.host_resolvers()
    assert [a for a in egress.policy_from_settings().allowed if a.port == 53] == [
        egress.Allowance(ipaddress.IPv4Network(address), 53) for address in resolvers
    ]

    names = {egress.bridge_name(f"shtest-store-{n}-net") for n in range(1000)}
    assert len(names) == 1000
    assert all(name.startswith("shs") and len(name) <= 15 for name in names)  # Linux's IFNAMSIZ - 1
    assert egress.bridge_name("x-net") == egress.bridge_name("x-net")


def test_wordpress_blocks_outbound_http_only_where_the_settings_say(settings):
    settings.STORE_HTTP_BLOCK_EXTERNAL = False
    assert wordpress_outbound_http() == ""  # production: WordPress calls out, the host's fence decides
    settings.STORE_HTTP_BLOCK_EXTERNAL, settings.STORE_HTTP_ACCESSIBLE_HOSTS = True, []
    assert wordpress_outbound_http() == " define('WP_HTTP_BLOCK_EXTERNAL', true);"
    settings.STORE_HTTP_ACCESSIBLE_HOSTS = ["198.51.100.10", "*.stripe.com"]
    assert wordpress_outbound_http() == (
        " define('WP_HTTP_BLOCK_EXTERNAL', true); define('WP_ACCESSIBLE_HOSTS', '198.51.100.10,*.stripe.com');"
    )
    settings.STORE_HTTP_ACCESSIBLE_HOSTS = ["x'); system('id"]
    with pytest.raises(ImproperlyConfigured, match="STORE_HTTP_ACCESSIBLE_HOSTS: .* is not a host name or address"):
        wordpress_outbound_http()


# --- two live stores on the real engine ----------------------------------------------------------------


def connect(store, host: str, port: int, timeout: float = 3) -> dict:
    """A TCP connection attempt from the store's web container."""
    code, output = docker_client.container_exec(
        name=f"{store.slug}-web",
        command=["php", "-r", CONNECT_PROBE],
        environment={"PROBE_HOST": host, "PROBE_PORT": str(port), "PROBE_TIMEOUT": str(timeout)},
    )
    assert code == 0, output
    return json.loads(output)


def assert_connects(store, host: str, port: int) -> None:
    result = connect(store, host, port)
    assert result["connected"], (host, port, result)


def assert_fenced(store, host: str, port: int) -> None:
    """Refused by the fence, and at once: no route (ICMP admin-prohibited), not a timeout or a closed port."""
    result = connect(store, host, port)
    assert not result["connected"] and result["errno"] == EHOSTUNREACH, (host, port, result)
    assert result["seconds"] < 1, result


def wordpress_get(store, url: str) -> str:
    code, output = docker_client.container_exec(
        name=f"{store.slug}-web",
        command=[
            "php",
            "-r",
            WORDPRESS_LOAD + f"$r = wp_remote_get('{url}', ['timeout' => 5]);"
            " echo is_wp_error($r) ? 'error: ' . $r->get_error_message() : wp_remote_retrieve_body($r);",
        ],
    )
    assert code == 0, output
    return output


@pytest.mark.django_db
@pytest.mark.docker
def test_a_store_reaches_the_internet_and_nothing_private(
    settings,
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    need_root_network_tools()
    # The test's WordPress blocks outbound HTTP (nothing outside answers here), but for the stand-in internet.
    settings.STORE_HTTP_BLOCK_EXTERNAL, settings.STORE_HTTP_ACCESSIBLE_HOSTS = True, [INTERNET]
    settings.EGRESS_MANAGED, settings.EGRESS_ALLOWED, settings.EGRESS_BLOCKED_EXTRA = True, [], []
    common = {"capture": django_capture_on_commit_callbacks, "run_worker": run_provisioning_worker}
    with ExitStack() as stack:
        stack.callback(egress.fence_remove)
        egress.fence_remove()  # a fence another run left: the controls below need the host without one
        internet = stack.enter_context(netns.namespace(INTERNET))
        internet.http_listener(port=80, body=INTERNET_BODY.encode())
        metadata = stack.enter_context(netns.namespace(METADATA))
        metadata.http_listener(port=80, body=b"ami-id\n")
        private = stack.enter_context(netns.namespace(PRIVATE))
        private.http_listener(port=80, body=b"the platform's secrets\n")

        store_a = provision(customer=user_factory(), plan=woo_plan, domain="fenced-a.test", title="A", **common)
        store_b = provision(customer=user_factory(), plan=woo_plan, domain="fenced-b.test", title="B", **common)
        engine = docker_client.client()
        network_a = engine.networks.get(f"{store_a.slug}-net")
        # The store network's bridge carries the name the fence matches.
        assert network_a.attrs["Options"]["com.docker.network.bridge.name"] == egress.bridge_name(network_a.name)
        assert subprocess.run(["ip", "link", "show", egress.bridge_name(network_a.name)]).returncode == 0
        # A store network from before the fence (the engine's own br-… bridge) is named as outside it.
        legacy = docker_client.network_ensure(name=f"{store_a.slug}-legacy-net", labels=network_a.attrs["Labels"])
        unfenced = egress.unfenced_store_networks()
        assert f"{legacy.name} ({legacy.bridge})" in unfenced and legacy.bridge.startswith("br-")
        assert not [name for name in unfenced if name.startswith((f"{store_a.slug}-net", f"{store_b.slug}-net"))]
        gateway = network_a.attrs["IPAM"]["Config"][0]["Gateway"]
        host_port = stack.enter_context(netns.host_listener(gateway))
        db_b = engine.containers.get(f"{store_b.slug}-db").attrs["NetworkSettings"]["Networks"][f"{store_b.slug}-net"]
        db_b = db_b["IPAddress"]

        # Without the fence: everything but store B answers store A (so each listener is really reachable).
        for host, port in ((METADATA, 80), (PRIVATE, 80), (gateway, host_port)):
            assert_connects(store_a, host, port)
        isolated = connect(store_a, db_b, 3306, timeout=1.5)  # Docker's isolation drops it (a timeout)
        assert not isolated["connected"], isolated

        egress.fence_apply()
        assert egress.fence_drift() == []

        # WordPress fetches from the internet.
        assert wordpress_get(store_a, f"http://{INTERNET}/") == INTERNET_BODY
        # WordPress's own block is on for every other host here (the test's settings), unlike production.
        assert wordpress_get(store_a, "http://203.0.113.7/") == "error: User has blocked requests through HTTP."
        # Any code in the store, whatever WordPress's settings: the metadata service, the private network,
        # the host itself and store B's database are refused at once.
        assert_connects(store_a, INTERNET, 80)
        assert_fenced(store_a, METADATA, 80)
        assert_fenced(store_a, PRIVATE, 80)
        assert_fenced(store_a, gateway, host_port)
        assert_fenced(store_a, db_b, 3306)
        assert_fenced(store_b, PRIVATE, 80)
        # The host's web ports stay open to it (nothing listens on the gateway's 80 here: a closed port).
        assert connect(store_a, gateway, 80)["errno"] == ECONNREFUSED
        # The store itself still works: its own database and cache, its pages.
        assert_connects(store_a, "db", 3306)
        assert_connects(store_a, "cache", 6379)
        assert fetch(store_a.port, "fenced-a.test").status == 200
