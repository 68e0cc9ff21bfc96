"""The locally built base image runs on the real engine with enforced limits."""

import uuid

import pytest
from django.conf import settings

from provisioning import docker_client
from provisioning.exceptions import ProvisioningError


def test_container_from_the_base_image_gets_its_memory_and_cpu_limits(docker_engine):
    assert docker_client.image_exists(tag=settings.DOCKER_BASE_IMAGE), "bin/test builds it with deploy/images"
    name = f"shophosting-test-{uuid.uuid4().hex[:8]}"
    try:
        container = docker_client.container_run(
            name=name,
            image=settings.DOCKER_BASE_IMAGE,
            command=["sleep", "30"],
            memory_bytes=64 * 1024 * 1024,
            cpus=0.5,
            labels={"shophosting.test": "1"},
        )
        assert container.status == "running"
        inspected = docker_client.container_get(name=name)
        assert inspected.memory_limit_bytes == 64 * 1024 * 1024
        assert inspected.nano_cpus == 500_000_000
        assert inspected.labels["shophosting.test"] == "1"
    finally:
        assert docker_client.container_remove(name=name) is True
    assert docker_client.container_get(name=name) is None
    assert docker_client.container_remove(name=name) is False


def test_a_missing_image_is_a_clear_provisioning_error(docker_engine):
    with pytest.raises(ProvisioningError, match="is not on the engine"):
        docker_client.container_run(
            name=f"shophosting-test-{uuid.uuid4().hex[:8]}",
            image="shophosting/does-not-exist:1",
            memory_bytes=64 * 1024 * 1024,
            cpus=0.5,
            labels={},
        )
