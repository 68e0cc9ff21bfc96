"""The real Docker engine that bin/test starts, the store images, and a clean slate of test stores."""

import pytest
from django.conf import settings

from tests.plugins.ci import require_or_skip


@pytest.fixture(scope="session")
def docker_engine():
    """The real engine that bin/test starts; every Docker test shares it."""
    from provisioning import docker_client

    try:
        return docker_client.engine_info()
    except docker_client.DockerUnavailable as exc:
        require_or_skip("a Docker engine", f"none answers ({exc}); bin/test starts one")


@pytest.fixture(scope="session")
def store_images(docker_engine):
    """The locally built store images (cached by content hash: about 1 s when nothing changed)."""
    from provisioning.images import images_build

    return images_build(log=lambda message: None)


@pytest.fixture
def clean_test_stores(docker_engine, nginx_server, acme_server):
    """Removes every Docker object of test stores before and after the test."""
    from provisioning import docker_client

    label = f"shophosting.env={settings.STORE_OBJECT_PREFIX}"
    docker_client.labelled_objects_remove(label=label)
    yield label
    docker_client.labelled_objects_remove(label=label)
