"""The locally built base image runs on the real engine with enforced limits, through the calls the
provisioning steps make (network_ensure, stack_container_ensure, container_state, labelled_objects_remove)."""

import uuid

import pytest
from django.conf import settings

from provisioning import docker_client
from provisioning.exceptions import ProvisioningError


@pytest.fixture
def own_network(docker_engine):
    """A network of this test's own, labelled so that everything the test starts on it goes with it."""
    run = uuid.uuid4().hex[:8]
    labels = {"shophosting.test-run": run}
    network = f"shophosting-test-{run}-net"
    docker_client.network_ensure(name=network, labels=labels)
    yield run, labels, network
    docker_client.labelled_objects_remove(label=f"shophosting.test-run={run}")


def container(name: str, image: str, network: str, labels: dict[str, str]):
    return docker_client.stack_container_ensure(
        name=name,
        image=image,
        network=network,
        alias="web",
        labels=labels,
        memory_bytes=64 * 1024 * 1024,
        cpus=0.5,
        environment={},
        volumes={},
        command=["sleep", "30"],
    )


def test_container_from_the_base_image_gets_its_memory_and_cpu_limits(own_network):
    assert docker_client.image_exists(tag=settings.DOCKER_BASE_IMAGE), "bin/test builds it with deploy/images"
    run, labels, network = own_network
    name = f"shophosting-test-{run}"
    started, created = container(name, settings.DOCKER_BASE_IMAGE, network, labels)
    assert created and started.status == "running"
    assert started.memory_limit_bytes == 64 * 1024 * 1024
    assert started.nano_cpus == 500_000_000
    assert started.labels["shophosting.test-run"] == run
    assert docker_client.container_state(name=name) == ("running", "")

    # A retried step finds the container and reuses it.
    again, created = container(name, settings.DOCKER_BASE_IMAGE, network, labels)
    assert not created and again.id == started.id

    removed = docker_client.labelled_objects_remove(label=f"shophosting.test-run={run}")
    assert removed["containers"] == [name] and removed["networks"] == [network]
    assert docker_client.container_state(name=name) == ("missing", "")
    assert docker_client.labelled_objects_remove(label=f"shophosting.test-run={run}") == {
        "containers": [],
        "networks": [],
        "volumes": [],
    }


def test_a_missing_image_is_a_clear_provisioning_error(own_network):
    run, labels, network = own_network
    with pytest.raises(ProvisioningError, match="is not on the engine"):
        container(f"shophosting-test-{run}", "shophosting/does-not-exist:1", network, labels)
