"""Benchmark: moving a live WooCommerce store whose database holds about 50 MB between two real engines (the
platform's own and a second one in a network namespace over TCP with TLS, as tests/plugins/engines.py starts
it), through nginx. Reports the move's total time (the `move` job, from its first step to its last) and the
switch window (the maintenance page up, final sync, nginx routed to the target: the store's downtime), the
median of N moves (host 1 → host 2, then back, and so on), and, measured in the same run, the floor of the
window's largest part: a plain dump of the database and its import, in the store's own database container.

    .venv/bin/python tests/benchmarks/move.py [--runs 4] [--megabytes 50]

Needs root (the second engine's namespace) and what bin/test needs (dockerd, MariaDB, Redis, nginx, the local
images). Uses its own database `shophosting_bench`, Redis database 13, nginx on 127.0.0.1:18191 and store
prefix `shbench-move`. Run it under the Docker tests' lock (`flock /tmp/docker-tests.lock`): the second engine
and its namespace are the tests'.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
BENCH = ROOT / "var" / "bench" / "move"
NGINX = BENCH / "nginx"
os.environ["DJANGO_SETTINGS_MODULE"] = "shophosting.settings.test"
os.environ["DATABASE_URL"] = "mysql://root@127.0.0.1:3306/shophosting_bench"
os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/13"
os.environ["STORE_OBJECT_PREFIX"] = "shbench-move"
os.environ["NGINX_ENABLED"] = "true"
os.environ["TLS_ENABLED"] = "false"
os.environ["NGINX_COMMAND"] = f"nginx,-p,{NGINX},-c,{NGINX}/nginx.conf"
os.environ["NGINX_SITES_DIR"] = f"{NGINX}/sites"
os.environ["NGINX_ACME_WEBROOT"] = f"{NGINX}/acme"
os.environ["NGINX_LISTEN_HTTP"] = "127.0.0.1:18191"
os.environ["NGINX_LISTEN_HTTPS"] = "127.0.0.1:18544"
os.environ["NGINX_FIREWALL_LOG_DIR"] = f"{NGINX}/firewall"
os.environ["NGINX_AUTH_DIR"] = f"{NGINX}/auth"


def sql(store, statement: str) -> str:
    from provisioning import docker_client
    from provisioning.stacks.base import DB_ROOT_CLIENT_ENV

    code, output = docker_client.container_exec(
        name=f"{store.slug}-db",
        command=["sh", "-c", f'{DB_ROOT_CLIENT_ENV} mariadb -uroot wordpress -N -B -e "$0"', statement],
        base_url=store.host.engine,
    )
    if code != 0:
        raise RuntimeError(output)
    return output.strip()


def fill_database(store, megabytes: int) -> None:
    """About `megabytes` of order-like rows (1 KB of random hex each), through MariaDB's sequence engine."""
    sql(store, "CREATE TABLE bench_orders (id INT AUTO_INCREMENT PRIMARY KEY, payload TEXT) ENGINE=InnoDB")
    rows = megabytes * 1024
    payload = f"CONCAT({', '.join(['SHA2(RAND(), 512)'] * 8)})"  # 8 x 128 hex characters
    for start in range(0, rows, 10_000):
        count = min(10_000, rows - start)
        sql(store, f"INSERT INTO bench_orders (payload) SELECT {payload} FROM seq_1_to_{count}")  # noqa: S608


def nginx_start() -> None:
    import subprocess

    from tests.plugins.nginx import nginx_test_conf

    shutil.rmtree(NGINX, ignore_errors=True)
    for directory in ("sites", "acme", "tmp", "firewall", "auth"):
        (NGINX / directory).mkdir(parents=True, exist_ok=True)
    (NGINX / "nginx.conf").write_text(nginx_test_conf(prefix=NGINX, listen=os.environ["NGINX_LISTEN_HTTP"]))
    subprocess.run(["nginx", "-p", str(NGINX), "-c", f"{NGINX}/nginx.conf", "-s", "quit"], capture_output=True)
    time.sleep(0.2)
    subprocess.run(["nginx", "-p", str(NGINX), "-c", f"{NGINX}/nginx.conf"], check=True)


def nginx_stop() -> None:
    import subprocess

    subprocess.run(["nginx", "-p", str(NGINX), "-c", f"{NGINX}/nginx.conf", "-s", "quit"], capture_output=True)


class _TempDirs:
    """What the second engine's fixture asks of pytest's tmp_path_factory."""

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-"))


def hosts_register(engine):
    from provisioning.hosts import host_check
    from stores.models import Host
    from stores.services import host_local_ensure, host_save

    local = host_local_ensure(docker_url="unix:///var/run/docker.sock")
    Host.objects.exclude(pk=local.pk).update(active=False)
    Host.objects.filter(pk=local.pk).update(active=True, status="ready", memory_capacity_mb=20480, cpu_capacity=32)
    remote = Host.objects.filter(name="bench-engine2").first() or Host(name="bench-engine2")
    remote.docker_url, remote.bind_address = engine.url, engine.address
    remote.port_range_start, remote.port_range_end = 21000, 21099
    remote.memory_capacity_mb, remote.cpu_capacity, remote.active, remote.status = 20480, 32, True, "ready"
    tls = {"ca": engine.tls.ca, "cert": engine.tls.client_cert, "key": engine.tls.client_key}
    host_save(host=remote, tls=tls, check=host_check(engine=engine.engine(), bind_address=remote.bind_address))
    return Host.objects.get(pk=local.pk), remote


def provision_store():
    from accounts.services import customer_create
    from billing.models import Plan
    from provisioning.orders import store_order_paid
    from provisioning.services import job_execute
    from stores.models import Store
    from stores.services import store_create

    customer = customer_create(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password="bench-password-1")
    store = store_create(
        customer=customer,
        plan=Plan.objects.get(slug="woocommerce-commerce-core"),
        domain=f"move-bench-{uuid.uuid4().hex[:6]}.test",
        site_title="Bench Shop",
    )
    job_execute(job_id=store_order_paid(store_id=store.pk).pk)
    for job_id in store.backup_runs.filter(status="queued").values_list("job_id", flat=True):
        job_execute(job_id=job_id)  # the first backup, so the store is free for the moves
    store = Store.objects.select_related("host", "plan").get(pk=store.pk)
    assert store.status == "active", store.jobs.first().error
    return store


def move(store, host):
    from provisioning.models import ProvisioningJob
    from provisioning.move_models import StoreMove
    from provisioning.moves import store_move_request
    from provisioning.services import job_execute

    request = store_move_request(store_id=store.pk, host_id=host.pk)
    job_execute(job_id=request.job_id)
    done = StoreMove.objects.get(pk=request.pk)
    job = ProvisioningJob.objects.get(pk=done.job_id)
    assert done.status == "moved", job.error
    return done, job.duration_seconds


def plain_dump_and_import(store) -> float:
    """The floor of the window's database part: the same dump, then its import, in the store's own database
    container (no stream between engines, no nginx, no files)."""
    from provisioning import docker_client
    from provisioning.move_steps import DUMP, IMPORT
    from provisioning.stacks import stack_for

    db = stack_for(store).container_name("db")
    started = time.monotonic()
    for command in (DUMP, IMPORT):
        if docker_client.container_exec_wait(name=db, command=command, base_url=store.host.engine) != 0:
            raise RuntimeError(f"{command[-1][:80]} failed")
    return time.monotonic() - started


def report(what: str, values: list[float]) -> None:
    median = statistics.median(values)
    print(f"{what}: median {median:.2f} s (min {min(values):.2f}, max {max(values):.2f}, {len(values)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()

    import MySQLdb

    MySQLdb.connect(host="127.0.0.1", user="root").cursor().execute(
        "CREATE DATABASE IF NOT EXISTS shophosting_bench CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from billing.services.plans import plan_catalogue_seed
    from provisioning import docker_client
    from provisioning.images import images_build
    from tests.plugins import engines

    plan_catalogue_seed()
    images_build(log=lambda message: None)
    # Going live queues the store's first backup: into a scratch repository of the benchmark's own.
    shutil.rmtree(BENCH / "restic", ignore_errors=True)
    (BENCH / "restic").mkdir(parents=True)
    (BENCH / "restic" / "password").write_text("bench\n")
    settings.RESTIC_REPOSITORY = str(BENCH / "restic" / "repository")
    settings.RESTIC_PASSWORD_FILE = str(BENCH / "restic" / "password")
    settings.BACKUP_STAGING_DIR = str(BENCH / "staging")
    from backups import restic

    restic.repository_init()
    nginx_start()
    engine_fixture = engines.second_engine.__wrapped__(store_images=None, tmp_path_factory=_TempDirs())
    engine = next(engine_fixture)
    store = None
    try:
        local, remote = hosts_register(engine)
        store = provision_store()
        fill_database(store, args.megabytes)
        rows = sql(store, "SELECT COUNT(*) FROM bench_orders")
        print(f"database: {rows} rows of bench_orders", flush=True)
        totals, windows, copies, dumps = [], [], [], []
        for n in range(args.runs):
            target = remote if store.host_id == local.pk else local
            dumps.append(plain_dump_and_import(store))
            done, total = move(store, target)
            totals.append(total)
            windows.append(done.downtime_seconds)
            copies.append(done.copy_seconds)
            from stores.models import Store

            store = Store.objects.select_related("host", "plan").get(pk=store.pk)
            print(
                f"run {n + 1}: {done.source_host.name} -> {done.target_host.name}: move {total:.2f} s, switch window "
                f"{done.downtime_seconds:.2f} s, first copy {done.copy_seconds:.2f} s "
                f"(database dump {done.database_bytes / 1e6:.1f} MB, files {done.files_bytes / 1e6:.1f} MB); "
                f"plain dump + import in one container {dumps[-1]:.2f} s",
                flush=True,
            )
        report("move (the job, first step to last)", totals)
        report("switch window (maintenance page up to nginx routed to the target)", windows)
        report("first copy while live (database and files)", copies)
        report("baseline: plain dump + import of the database in its own container", dumps)
    finally:
        if store is not None:  # its row stays in the benchmark's database, holding no host
            from stores.models import Store

            Store.objects.filter(pk=store.pk).update(host=None, port=None, move_host=None, move_port=None)
        label = f"shophosting.env={os.environ['STORE_OBJECT_PREFIX']}"
        docker_client.labelled_objects_remove(label=label)
        next(engine_fixture, None)  # removes its objects and stops the second engine
        nginx_stop()


if __name__ == "__main__":
    main()
