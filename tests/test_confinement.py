"""Every store container is confined on the real engine (provisioning/README.md, "Limits and confinement"):
a pids limit, a rotated log, no-new-privileges, no capability but those its image needs, a read-only root
where the stack declares one, and database passwords as secret files, never in the container's config. A
fork loop in one store stops at that store's limit while the host and another store keep answering.

One test, two live stores (WooCommerce with phpMyAdmin, and the Magento stand-ins), so every store image is
inspected and the suite provisions only twice."""

import http.client
import subprocess
import time

import pytest
from django.conf import settings

from backups.services.stack_io import database_dump
from provisioning import docker_client
from provisioning.models import ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.stacks import stack_for
from provisioning.stacks.base import SECRETS_DIR
from stores.models import Store
from stores.services import store_create, store_credentials

pytestmark = [pytest.mark.django_db, pytest.mark.docker]

# Linux capability numbers (include/uapi/linux/capability.h), to read a process's bounding set.
CAPABILITY_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "KILL": 5, "SETGID": 6, "SETUID": 7}
# What the stacks declare, written out so that a change to them is a change to this test too.
READ_ONLY_ROLES = {"woocommerce": {"db", "cache", "web"}, "magento": {"db", "cache"}}
SECRET_FILES = {"db": {"db_password", "db_root_password"}, "web": {"db_password"}}


def provision(*, customer, plan, domain: str, title: str, capture, run_worker, phpmyadmin: bool = False) -> Store:
    store = store_create(customer=customer, plan=plan, domain=domain, site_title=title)
    if phpmyadmin:
        Store.objects.filter(pk=store.pk).update(phpmyadmin_enabled=True)
    with capture(execute=True):
        job = store_order_paid(store_id=store.pk)
    with capture(execute=True):
        run_worker()
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    store.refresh_from_db()
    return store


def get(port: int, domain: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": domain, "Connection": "close"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def exec_in(container: str, script: str) -> tuple[int, str]:
    return docker_client.container_exec(name=container, command=["sh", "-c", script])


def capability_set(names) -> int:
    return sum(1 << CAPABILITY_BITS[name] for name in names)


def assert_confined(store: Store) -> None:
    engine = docker_client.client()
    creds = store_credentials(store)
    secrets = [creds[key] for key in ("db_password", "db_root_password", "admin_password")]
    stack = stack_for(store)
    services = stack.services(include_optional=True, credentials=creds)
    assert {s.role for s in services if s.read_only} == READ_ONLY_ROLES[store.platform]
    for service in services:
        name = stack.container_name(service.role)
        attrs = engine.containers.get(name).attrs
        host = attrs["HostConfig"]
        assert host["PidsLimit"] == settings.STORE_PIDS_LIMITS[service.role] > 0, name
        assert host["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-size": settings.STORE_LOG_MAX_SIZE, "max-file": str(settings.STORE_LOG_MAX_FILE)},
        }, name
        assert host["SecurityOpt"] == ["no-new-privileges:true"], name
        assert attrs["Config"]["User"] == (service.user or ""), name
        assert [cap.removeprefix("CAP_") for cap in host["CapDrop"]] == ["ALL"], name
        assert sorted(cap.removeprefix("CAP_") for cap in host["CapAdd"] or []) == sorted(service.cap_add), name
        # What the kernel applies to the container's first process: no more than those capabilities, and
        # no gaining any through a setuid program (NoNewPrivs).
        status = dict(line.split(":\t", 1) for line in exec_in(name, "cat /proc/1/status")[1].splitlines())
        assert int(status["CapBnd"], 16) == capability_set(service.cap_add), name
        assert status["NoNewPrivs"].strip() == "1", name

        assert host["ReadonlyRootfs"] is service.read_only, name
        assert (host.get("Tmpfs") or {}) == service.tmpfs, name
        code, output = exec_in(name, "touch /etc/shophosting-probe && rm /etc/shophosting-probe")
        if service.read_only:
            assert code != 0 and "Read-only file system" in output, name
        else:
            assert code == 0, (name, output)

        # No password in the container's configuration (what `docker inspect` and the engine's API show);
        # the database passwords are 0440 files on a read-only mount, only in the containers that use them.
        environment = "\n".join(attrs["Config"]["Env"] or [])
        assert not any(secret in environment for secret in secrets), name
        expected_files = SECRET_FILES.get(service.role, set())
        mounts = {m["Destination"]: m for m in attrs["Mounts"]}
        if not expected_files:
            assert SECRETS_DIR not in mounts, name
            continue
        assert mounts[SECRETS_DIR]["RW"] is False, name
        code, listing = exec_in(name, f"cd {SECRETS_DIR} && stat -c '%n %a %u %g' *")
        assert code == 0, listing
        files = {line.split()[0]: line.split()[1:] for line in listing.splitlines()}
        assert set(files) == expected_files, name
        assert all(
            mode == "440" and uid == "0" and gid == str(service.secrets_gid) for mode, uid, gid in files.values()
        )
        for file_name in expected_files:
            assert exec_in(name, f"cat {SECRETS_DIR}/{file_name}")[1] == creds[file_name], (name, file_name)


def test_store_containers_are_confined_and_a_fork_loop_stops_at_the_stores_own_limit(
    user_factory,
    woo_plan,  # seeds the whole plan catalogue
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    tmp_path,
):
    from billing.models import Plan

    common = {"capture": django_capture_on_commit_callbacks, "run_worker": run_provisioning_worker}
    woo = provision(
        customer=user_factory(), plan=woo_plan, domain="confined.test", title="Confined", phpmyadmin=True, **common
    )
    magento = provision(
        customer=user_factory(),
        plan=Plan.objects.get(slug="magento-commerce-core"),
        domain="neighbour.test",
        title="Neighbour",
        **common,
    )

    # Every container of both stores (all the store images) carries every limit the stacks declare.
    assert_confined(woo)
    assert_confined(magento)
    # Who reads the database passwords reads them from the files: WordPress (its front page needs the
    # database), the backups' dump (as root, from MARIADB_ROOT_PASSWORD_FILE) and the Magento installer
    # (which the provision above ran).
    assert get(woo.port, "confined.test") == 200
    assert database_dump(woo, tmp_path / "db.sql") > 0
    assert b"CREATE TABLE `wp_options`" in (tmp_path / "db.sql").read_bytes()

    # A fork loop in the WooCommerce web container: processes that live 25 s (the checks below must finish
    # while they do, on a busy machine too), started until fork fails.
    web = f"{woo.slug}-web"
    limit = settings.STORE_PIDS_LIMITS["web"]
    started = time.monotonic()
    code, output = exec_in(web, "i=0; while sleep 25 >/dev/null 2>&1 & do i=$((i+1)); echo $i; done")
    assert code != 0 and "fork" in output.lower(), output[-500:]
    forked = max(int(word) for word in output.split() if word.isdigit())
    assert limit - 50 < forked < limit, output[-500:]  # the rest are Apache's own processes
    # While the loop's processes live: the container is at its limit, and nothing else is.
    stats = docker_client.client().api.stats(web, stream=False, one_shot=True)
    assert stats["pids_stats"]["current"] in (limit - 1, limit)  # the loop's shell itself exited when fork failed
    assert subprocess.run(["true"], check=False).returncode == 0  # the host still starts processes
    assert docker_client.engine_info().server_version  # the engine answers
    assert get(magento.port, "neighbour.test") == 200  # another store answers
    assert time.monotonic() - started < 25, "the checks ran after the loop's processes had ended"

    # Once they have ended, the store itself answers again.
    deadline = time.monotonic() + 120
    while True:
        try:
            if get(woo.port, "confined.test") == 200:
                break
        except (OSError, http.client.HTTPException):
            pass
        assert time.monotonic() < deadline, "the store did not recover from the fork loop"
        time.sleep(0.5)
