"""The stores' outbound fence on a host reached only through its Docker API (provisioning/egress.py, "On a host,
through its Docker API"; provisioning/README.md, "The fence on every host").

On the second engine (tests/plugins/engines.py: a dockerd in a network namespace the test creates, 10.213.0.2,
the machine's end of its link 10.213.0.1): two store networks with `shs…` bridges, store A a plain container,
store B a Redis published on the host's private address. Without the fence store A reaches the machine (a
listener of the test's on 10.213.0.1) and store B's published port; the host's registration check (the fence
managed) applies the fence through a helper container on that engine, after which both are refused at once
("No route to host"), as is store B's own address; `egress_apply --check --host` and the periodic drift check
see a rule deleted on the host, `egress_apply --host` repairs it, and `--remove --host` restores the reach.
"""

import socket
import subprocess
import threading
import time

import pytest
from django.core.management import CommandError, call_command

from provisioning import docker_client, egress
from provisioning.care.models import Incident, PlatformCheck

pytestmark = [pytest.mark.docker, pytest.mark.django_db]

MACHINE = "10.213.0.1"  # the machine's end of the second engine's link (tests/netns.py)
MACHINE_PORT = 18631
B_PORT = 21150  # store B's published port on the second engine's private address


class MachineListener:
    """A TCP listener of the machine's own on 10.213.0.1, as the platform's MariaDB or Redis would be; it
    answers `hello` to each connection."""

    def __init__(self, address: str, port: int):
        self.server = socket.create_server((address, port))
        self.server.settimeout(0.5)
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            with connection:
                connection.sendall(b"hello\n")

    def close(self):
        self.stopped = True
        self.thread.join(timeout=2)
        self.server.close()


def connect(container: str, engine, host: str, port: int) -> tuple[str, float]:
    """A raw TCP connect from inside `container`: ("connected" | "refused" | "unreachable" | "timeout" |
    other output, seconds)."""
    started = time.monotonic()
    code, output = docker_client.container_exec(
        name=container,
        command=["timeout", "4", "bash", "-c", 'exec 3<>"/dev/tcp/$0/$1" && echo connected', host, str(port)],
        base_url=engine,
    )
    seconds = time.monotonic() - started
    if code == 0 and "connected" in output:
        return "connected", seconds
    if code == 124:
        return "timeout", seconds
    if "No route to host" in output:
        return "unreachable", seconds
    if "Connection refused" in output:
        return "refused", seconds
    return output.strip(), seconds


def assert_fenced(container, engine, host, port):
    outcome, seconds = connect(container, engine, host, port)
    assert outcome == "unreachable", f"{host}:{port} from {container}: {outcome}"
    # The exec round trip over TLS to the second engine is most of it; a dropped packet would take the 4 s timeout.
    assert seconds < 3.5, f"refused at once, not after a timeout ({seconds:.1f} s)"


def machine_chains() -> set[str]:
    done = subprocess.run(["iptables", "-w", "10", "-S"], capture_output=True, text=True, timeout=30)
    return {line.split()[1] for line in done.stdout.splitlines() if line.startswith("-N ")}


@pytest.fixture
def host_stores(second_engine, store_images, settings):
    """Store A (a plain container) and store B (Redis, published on 10.213.0.2) on the second engine, each on
    a store network of its own whose bridge the fence matches."""
    engine = second_engine.engine()
    prefix = settings.STORE_OBJECT_PREFIX
    labels = {"shophosting.env": prefix, "shophosting.test": "egress-hosts"}
    image = settings.STORE_IMAGES["woocommerce"]["cache"]
    docker_client.labelled_objects_remove(label="shophosting.test=egress-hosts", base_url=engine)
    names = {}
    for store in ("a", "b"):
        network = f"{prefix}-egress{store}-net"
        docker_client.network_ensure(name=network, labels=labels, bridge=egress.bridge_name(network), base_url=engine)
        info, _ = docker_client.stack_container_ensure(
            name=f"{prefix}-egress{store}-web",
            image=image,
            network=network,
            alias="web",
            labels=labels,
            memory_bytes=64 * 1024 * 1024,
            cpus=0.5,
            environment={},
            volumes={},
            command=["redis-server", "--port", "6379", "--protected-mode", "no", "--save", ""]
            if store == "b"
            else ["sleep", "600"],
            publish=(6379, second_engine.address, B_PORT) if store == "b" else None,
            pids_limit=64,
            base_url=engine,
        )
        names[store] = info.name
    code, address_b = docker_client.container_exec(name=names["b"], command=["hostname", "-i"], base_url=engine)
    assert code == 0, address_b
    yield {
        "engine": engine,
        "a": names["a"],
        "b_published": (second_engine.address, B_PORT),
        "b_address": address_b.split()[0],
    }
    docker_client.labelled_objects_remove(label="shophosting.test=egress-hosts", base_url=engine)


def test_the_fence_applied_through_a_hosts_api_keeps_its_stores_off_the_machine_and_each_other(
    second_engine, host_stores, settings, capsys
):
    from provisioning.hosts import hosts_fence_check

    settings.EGRESS_MANAGED = True
    settings.EGRESS_ALLOWED, settings.EGRESS_BLOCKED_EXTRA = [], []
    engine, store_a = host_stores["engine"], host_stores["a"]
    b_address, b_port = host_stores["b_published"]
    egress.host_fence_remove(engine)  # a fence an earlier, killed run left
    chains_before = "SHOPHOSTING-EGRESS" in machine_chains()
    listener = MachineListener(MACHINE, MACHINE_PORT)
    try:
        # Without the fence the store reaches the machine and the other store's published port: the probes work.
        assert connect(store_a, engine, MACHINE, MACHINE_PORT)[0] == "connected"
        assert connect(store_a, engine, b_address, b_port)[0] == "connected"
        assert connect(store_a, engine, host_stores["b_address"], 6379)[0] != "connected"  # Docker's isolation

        # Registering the host applies the fence, through the engine's API only.
        host = second_engine.host_register(
            name="engine2-fenced", port_range_start=21100, memory_capacity_mb=2048, cpu_capacity=2
        )
        assert "the stores' outbound fence is in place (" in host.check_report

        assert_fenced(store_a, engine, MACHINE, MACHINE_PORT)
        assert_fenced(store_a, engine, b_address, b_port)
        assert_fenced(store_a, engine, host_stores["b_address"], 6379)
        # The rules are in the host's own namespace, the machine's are as they were, and no helper is left.
        inside = second_engine.namespace.run(["iptables", "-w", "10", "-S", "SHOPHOSTING-EGRESS"])
        assert inside.returncode == 0 and "-j REJECT --reject-with icmp-admin-prohibited" in inside.stdout
        assert ("SHOPHOSTING-EGRESS" in machine_chains()) == chains_before
        assert docker_client.labelled_objects(label="shophosting.egress-helper=1", base_url=engine)["containers"] == []

        call_command("egress_apply", "--check", "--host", host.name)
        assert f"{host.name}: the fence is in place" in capsys.readouterr().out
        assert hosts_fence_check()[0].ok

        # Drift on the host (a rule deleted by hand) is seen through the API, by the command and the periodic check.
        with egress.host_iptables(engine) as on_host:
            rule = ["-D", "SHOPHOSTING-EGRESS", "-d", "10.0.0.0/8", *egress.REJECT.split()]
            deleted = on_host.runner(["-w", "10", *rule], None)
            assert deleted.returncode == 0, deleted.stdout
        with pytest.raises(CommandError, match=rf"{host.name} differs from the settings \(1\)"):
            call_command("egress_apply", "--check", "--host", host.name)
        assert "missing in SHOPHOSTING-EGRESS: -A SHOPHOSTING-EGRESS -d 10.0.0.0/8" in capsys.readouterr().out
        settings.CARE_INCIDENT_THRESHOLD = 1
        check = hosts_fence_check()[0]
        assert check.component == f"egress.host-{host.pk}" and not check.ok
        assert "host engine2-fenced: the outbound fence differs" in check.output
        # The periodic check puts the fence back (a host's rules do not survive its reboot), and says so.
        assert check.output.endswith("put back in place"), check.output
        assert_fenced(store_a, engine, MACHINE, MACHINE_PORT)
        assert hosts_fence_check()[0].ok
        assert not Incident.objects.filter(open_for_component=f"egress.host-{host.pk}").exists()

        # The same hole again, closed by the command.
        with egress.host_iptables(engine) as on_host:
            assert on_host.runner(["-w", "10", *rule], None).returncode == 0
        assert connect(store_a, engine, MACHINE, MACHINE_PORT)[0] == "connected"  # the hole is real
        call_command("egress_apply", "--host", host.name)
        assert f"{host.name}: the fence is in place (" in capsys.readouterr().out
        assert_fenced(store_a, engine, MACHINE, MACHINE_PORT)
        assert hosts_fence_check()[0].ok
        assert not Incident.objects.filter(open_for_component=f"egress.host-{host.pk}").exists()
        assert PlatformCheck.objects.filter(component=f"egress.host-{host.pk}").count() == 4

        # Removing the fence gives the reach back.
        call_command("egress_apply", "--remove", "--host", host.name)
        assert connect(store_a, engine, MACHINE, MACHINE_PORT)[0] == "connected"
        assert connect(store_a, engine, b_address, b_port)[0] == "connected"
    finally:
        listener.close()
        egress.host_fence_remove(engine)


def test_an_unknown_host_is_named_and_nothing_is_touched(settings):
    settings.EGRESS_MANAGED = True
    with pytest.raises(CommandError, match="no host named nowhere"):
        call_command("egress_apply", "--host", "nowhere")


def test_a_host_that_cannot_be_fenced_is_not_registered_and_the_check_says_why(second_engine, store_images, settings):
    from provisioning.exceptions import HostCheckFailed
    from provisioning.hosts import host_check

    settings.EGRESS_MANAGED = True
    settings.EGRESS_IMAGE = "shophosting/egress-missing:none"
    with pytest.raises(HostCheckFailed, match="the stores' outbound fence could not be applied on tcp://10.213.0.2"):
        host_check(engine=second_engine.engine(), bind_address=second_engine.address)
    engine = second_engine.engine()
    assert docker_client.labelled_objects(label="shophosting.egress-helper=1", base_url=engine)["containers"] == []
    assert docker_client.labelled_objects(label="shophosting.host-check=1", base_url=engine)["containers"] == []
