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


def _wait_ready(container, timeout: float = 60, password: str = ROOT_PASSWORD) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _sql(container, "SELECT 1", password=password, host="localhost")[0] == 0:
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


def test_the_command_makes_existing_stores_databases_need_the_root_password_over_loopback(
    woo_plan,
    user_factory,
    clean_test_stores,
    store_images,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    capsys,
):
    """An existing store keeps its database container across restarts and updates (only the web container is
    ever recreated), so the image's own fix never reaches it: `stores_db_loopback_root` queues a job per active
    store that sets the passwords in the running container. Here the store's database is started by the
    provisioning steps themselves, then put back in the state of a directory from before 2026-12."""
    from django.core.management import CommandError, call_command

    from provisioning.models import ProvisioningJob
    from provisioning.services import job_enqueue
    from provisioning.stacks import stack_for
    from provisioning.steps import allocate, data_services_start, network_and_volumes
    from stores.models import Store
    from stores.services import store_create, store_credentials

    store = store_create(customer=user_factory(), plan=woo_plan, domain="olddb.test", site_title="Old DB")
    lines = []
    allocate(store, lines.append)
    store = Store.objects.select_related("host", "plan", "customer").get(pk=store.pk)
    network_and_volumes(store, lines.append)
    data_services_start(store, lines.append)
    Store.objects.filter(pk=store.pk).update(status=Store.Status.ACTIVE)
    container = docker_client.client(store.host.engine).containers.get(stack_for(store).container_name("db"))
    root_password = store_credentials(store)["db_root_password"]
    _wait_ready(container, password=root_password)

    def as_root(sql: str) -> str:
        code, output = _sql(container, sql, password=root_password, host="localhost")
        assert code == 0, output
        return output

    as_root("ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY ''; ALTER USER 'root'@'::1' IDENTIFIED BY '';")
    assert container.exec_run(["rm", MARKER]).exit_code == 0
    assert _sql(container, "SELECT 1", password=None)[0] == 0  # as an existing store's database was

    busy = store_create(customer=user_factory(), plan=woo_plan, domain="busy.test", site_title="Busy")
    Store.objects.filter(pk=busy.pk).update(status=Store.Status.ACTIVE, host=store.host, port=store.port + 1)
    with django_capture_on_commit_callbacks(execute=True):
        restart = job_enqueue(store_id=busy.pk, kind="restart")  # its own operation runs: not now
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(CommandError, match="1 stores were busy"):
        call_command("stores_db_loopback_root")
    output = capsys.readouterr()
    assert f"store {store.pk} (olddb.test): job #" in output.out and "1 queued, 1 not queued" in output.out
    assert f"store {busy.pk} (busy.test): not queued: This store is busy: restart (job #{restart.pk}" in output.err
    ProvisioningJob.objects.filter(pk=restart.pk).update(status=ProvisioningJob.Status.FAILED)  # not run here

    with django_capture_on_commit_callbacks(execute=True):
        run_provisioning_worker()
    job = ProvisioningJob.objects.get(store=store, kind="db_loopback_root")
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    code, denied = _sql(container, "SELECT 1", password=None)
    assert code != 0 and "Access denied" in denied, denied
    assert _sql(container, "SELECT 1", password=root_password)[0] == 0
    assert (
        as_root("SELECT Host FROM mysql.user WHERE User = 'root' AND authentication_string = '' ORDER BY Host").split()
        == []
    )
    assert [line.message for line in job.steps.get().log_lines.all()] == [
        "root@127.0.0.1 and root@::1 now need the root password"
    ]

    # Run again (both stores free now): nothing changes where it is done.
    Store.objects.filter(pk=busy.pk).update(status=Store.Status.SUSPENDED)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("stores_db_loopback_root")
    with django_capture_on_commit_callbacks(execute=True):
        run_provisioning_worker()
    again = ProvisioningJob.objects.filter(store=store, kind="db_loopback_root").latest("pk")
    assert again.status == ProvisioningJob.Status.SUCCEEDED
    assert [line.message for line in again.steps.get().log_lines.all()] == [
        "root@127.0.0.1 and root@::1 had a password already"
    ]
