"""The store database image (deploy/images/mariadb) on the real engine: root over TCP on the loopback needs
the root password, in a new data directory and in one initialised before the image set it."""

import time
import uuid

import pytest
from django.conf import settings

from provisioning import docker_client
from provisioning.images import image_tags

pytestmark = pytest.mark.docker
ROOT_PASSWORD = "root-pw-" + uuid.uuid4().hex[:12]
MARKER = "/var/lib/mysql/.shophosting-loopback-root-password"


@pytest.fixture
def database_container(store_images):
    """A database container of the store image, on a volume of its own, removed with it afterwards."""
    engine = docker_client.client()
    name = f"{settings.STORE_OBJECT_PREFIX}-mariadb-image-{uuid.uuid4().hex[:6]}"
    labels = {"shophosting.env": settings.STORE_OBJECT_PREFIX}
    volume = engine.volumes.create(name=f"{name}-data", labels=labels)
    container = engine.containers.run(
        image_tags("mariadb")[1],
        "mariadbd",
        name=name,
        detach=True,
        labels=labels,
        environment={"MARIADB_ROOT_PASSWORD": ROOT_PASSWORD, "MARIADB_DATABASE": "shop"},
        volumes={volume.name: {"bind": "/var/lib/mysql", "mode": "rw"}},
        network_mode="none",
    )
    try:
        yield container
    finally:
        container.remove(force=True)
        volume.remove(force=True)


def _sql(container, sql: str, *, password: str | None, host: str = "127.0.0.1") -> tuple[int, str]:
    environment = {"MYSQL_PWD": password} if password is not None else {}
    command = ["mariadb", f"-h{host}", "-uroot", "-N", "-B", "-e", sql]
    code, output = container.exec_run(command, environment=environment)
    return code, output.decode(errors="replace")


def _wait_ready(container, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _sql(container, "SELECT 1", password=ROOT_PASSWORD, host="localhost")[0] == 0:
            return
        container.reload()
        assert container.status == "running", container.logs()[-2000:].decode(errors="replace")
        time.sleep(0.2)
    raise AssertionError("the database did not answer within the timeout")


def _as_root(container, sql: str) -> str:
    """`sql` as root over the socket, with the root password; its output."""
    code, output = _sql(container, sql, password=ROOT_PASSWORD, host="localhost")
    assert code == 0, output
    return output


def _root_accounts_without_password(container) -> list[str]:
    sql = "SELECT Host FROM mysql.user WHERE User = 'root' AND authentication_string = '' ORDER BY Host"
    return _as_root(container, sql).split()


def _root_needs_the_password_over_tcp(container) -> None:
    """The server listens on IPv4 (127.0.0.1 is what a process of the container reaches it on); root@::1 is
    checked in the account table."""
    code, output = _sql(container, "SELECT 1", password=None)
    assert code != 0 and "Access denied" in output, output
    assert _sql(container, "SELECT 1", password=ROOT_PASSWORD)[0] == 0
    assert _root_accounts_without_password(container) == []


def test_root_over_loopback_tcp_needs_the_password_also_in_a_data_directory_from_before(database_container):
    container = database_container
    _wait_ready(container)
    _root_needs_the_password_over_tcp(container)
    assert container.exec_run(["test", "-f", MARKER]).exit_code == 0

    # A directory initialised by an earlier image: root@127.0.0.1 and root@::1 without a password, no marker.
    _as_root(container, "ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY ''; ALTER USER 'root'@'::1' IDENTIFIED BY '';")
    assert container.exec_run(["rm", MARKER]).exit_code == 0
    assert _sql(container, "SELECT 1", password=None)[0] == 0  # the hole this image closes
    assert _root_accounts_without_password(container) == ["127.0.0.1", "::1"]

    container.restart(timeout=20)  # what an image rollout or a host restart does
    _wait_ready(container)
    _root_needs_the_password_over_tcp(container)
    assert container.exec_run(["test", "-f", MARKER]).exit_code == 0
    # The data is the same directory: the database the first start made is still there.
    assert "shop" in _as_root(container, "SHOW DATABASES").split()
