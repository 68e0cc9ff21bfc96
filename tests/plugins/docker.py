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
    _store_vhosts_remove()
    yield label
    docker_client.labelled_objects_remove(label=label)
    _store_vhosts_remove()


def _store_vhosts_remove() -> None:
    """Store vhosts are named store-<id>.conf: one left by an earlier test's store would keep serving its names
    (nginx routes a name to the first file that has it), so a new store with the same names never gets them."""
    from pathlib import Path

    from provisioning import proxy

    for path in Path(settings.NGINX_SITES_DIR).glob("store-*.conf"):
        proxy.vhost_remove(domain=path.stem)
