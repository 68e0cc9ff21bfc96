"""A host reached over ssh:// (provisioning/docker_client.py, "ssh:// engines"; provisioning/README.md).

The second engine (tests/plugins/engines.py) is also reached through an sshd in its namespace on 10.213.0.2:22
(`second_engine_ssh`), whose sessions' `docker` CLI uses that engine's socket: the platform runs OpenSSH with the
host's own key and pinned host key and speaks the Docker API over `docker system dial-stdio`, as `docker -H
ssh://` does. The host is registered through the admin with its key stored encrypted, its check passes over
SSH, and a container created over SSH is the engine's own (the TLS endpoint sees it). A host key that is not
the pinned one, or a key the host does not accept, is refused with ssh's own reason, and bad input in the
admin is refused before anything is dialled.
"""

import pytest
from django.urls import reverse

from provisioning import docker_client
from stores.models import Host
from tests.plugins.engines import ssh_keypair

pytestmark = [pytest.mark.docker]


def _host_form(second_engine, ssh, **overrides) -> dict:
    form = {
        "name": "engine2-ssh",
        "docker_url": ssh.url,
        "bind_address": second_engine.address,
        "port_range_start": "21200",
        "port_range_end": "21299",
        "memory_capacity_mb": "2048",
        "cpu_capacity": "2",
        "disk_capacity_gb": "",
        "active": "on",
        "ssh_key": ssh.client_key,
        "ssh_known_hosts": ssh.known_hosts,
    }
    form.update(overrides)
    return form


@pytest.mark.django_db
def test_a_host_registered_over_ssh_is_checked_and_runs_containers_through_ssh(
    client, staff_user, second_engine, second_engine_ssh, store_images, settings
):
    client.force_login(staff_user)
    response = client.post(reverse("admin:stores_host_add"), _host_form(second_engine, second_engine_ssh))
    assert response.status_code == 302, response.content.decode()[-3000:]
    host = Host.objects.get(name="engine2-ssh")
    assert host.docker_url == f"ssh://root@{second_engine.address}"
    assert host.engine == second_engine_ssh.engine()  # the key and the pinned host key come back as given
    assert "PRIVATE KEY" not in host.ssh_encrypted and second_engine_ssh.client_key not in host.ssh_encrypted
    assert f"{second_engine.address} answers from the platform" in host.check_report
    page = client.get(reverse("admin:stores_host_change", args=[host.pk])).content.decode()
    assert "key and pinned host key stored (encrypted)" in page and "OPENSSH PRIVATE KEY" not in page

    # The same engine as over TLS: a container made over SSH is seen through the TLS endpoint.
    over_ssh, over_tls = host.engine, second_engine.engine()
    assert docker_client.engine_facts(base_url=over_ssh).server_version == (
        docker_client.engine_facts(base_url=over_tls).server_version
    )
    name = f"{settings.STORE_OBJECT_PREFIX}-over-ssh"
    labels = {"shophosting.env": settings.STORE_OBJECT_PREFIX, "shophosting.test": "ssh"}
    try:
        docker_client.network_ensure(name=f"{name}-net", labels=labels, base_url=over_ssh)
        info, created = docker_client.stack_container_ensure(
            name=name,
            image=settings.STORE_IMAGES["woocommerce"]["cache"],
            network=f"{name}-net",
            alias="cache",
            labels=labels,
            memory_bytes=64 * 1024 * 1024,
            cpus=0.5,
            environment={},
            volumes={},
            command=["redis-server", "--save", ""],
            pids_limit=64,
            base_url=over_ssh,
        )
        assert created and info.memory_limit_bytes == 64 * 1024 * 1024
        assert docker_client.container_state(name=name, base_url=over_tls)[0] == "running"
        code, output = docker_client.container_exec(name=name, command=["redis-cli", "ping"], base_url=over_ssh)
        assert (code, output.strip()) == (0, "PONG")
    finally:
        docker_client.labelled_objects_remove(label="shophosting.test=ssh", base_url=over_tls)
    assert docker_client.container_state(name=name, base_url=over_tls)[0] == "missing"


def test_a_host_key_that_is_not_the_pinned_one_or_a_refused_key_is_named(second_engine_ssh):
    impostor = second_engine_ssh.engine(ssh_known_hosts=second_engine_ssh.other_host_key_line)
    with pytest.raises(docker_client.DockerUnavailable, match="Host key verification failed"):
        docker_client.engine_facts(base_url=impostor)
    stranger = second_engine_ssh.engine(ssh_key=second_engine_ssh.stranger_key)
    with pytest.raises(docker_client.DockerUnavailable, match="Permission denied"):
        docker_client.engine_facts(base_url=stranger)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"ssh_key": "not a key"}, "This is not an unencrypted OpenSSH private key"),
        ({"ssh_known_hosts": "10.213.0.2 ssh-ed25519"}, "Not a known_hosts line"),
        ({"ssh_known_hosts": ""}, "Give the SSH private key and the host key together."),
        ({"ssh_key": "", "ssh_known_hosts": ""}, "An ssh:// engine needs the platform&#x27;s SSH key"),
        ({"docker_url": "tcp://10.213.0.2:2376"}, "An SSH key goes with an ssh:// engine URL only."),
    ],
)
def test_bad_ssh_input_is_refused_before_anything_is_dialled(client, staff_user, overrides, expected):
    key, public = ssh_keypair()

    class Access:
        url = "ssh://root@10.213.0.2"
        client_key = key
        known_hosts = f"10.213.0.2 {public}\n"

    class Engine2:
        address = "10.213.0.2"

    client.force_login(staff_user)
    response = client.post(reverse("admin:stores_host_add"), _host_form(Engine2, Access, **overrides))
    assert response.status_code == 200
    assert expected in response.content.decode()
    assert not Host.objects.filter(name="engine2-ssh").exists()
