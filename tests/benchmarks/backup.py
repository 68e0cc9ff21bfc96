"""Benchmark: an incremental backup of an unchanged store, a database-only restore, and preparing a download
(database.sql.gz and files.tar.gz) of a store whose database holds about 50 MB.

Each figure is the median of N runs, and each has a baseline measured in the same run, interleaved:
- backup: the platform's backup job (dump in the db container, volume archives, restic, bookkeeping) against
  plain `restic backup` of the same, already staged files;
- restore: the platform's restore job (pre-restore backup, stop, import, start, HTTP check) against a plain
  import of the same dump into the database container;
- download: the platform's download job (restic restore of the snapshot into staging, gzip of the dump, one
  .tar.gz of the volumes, bookkeeping) against a plain `restic restore` of the same snapshot.

    .venv/bin/python tests/benchmarks/backup.py [--runs 3] [--megabytes 50]

Needs what bin/test needs (dockerd, MariaDB, Redis, restic, the local images). Uses the MariaDB database
`shophosting_bench`, Redis database 12 and a scratch restic repository under var/bench/.
"""

import argparse
import os
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "shophosting.settings.test"
os.environ["DATABASE_URL"] = "mysql://root@127.0.0.1:3306/shophosting_bench"
os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/12"
os.environ["NGINX_ENABLED"] = "false"
os.environ["STORE_OBJECT_PREFIX"] = "shbench-store"
BENCH = ROOT / "var" / "bench"


def sql(store, statement: str) -> str:
    from provisioning import docker_client
    from provisioning.stacks.base import DB_ROOT_CLIENT_ENV

    code, output = docker_client.container_exec(
        name=f"{store.slug}-db",
        command=["sh", "-c", f'{DB_ROOT_CLIENT_ENV} mariadb -uroot wordpress -N -B -e "$0"', statement],
    )
    if code != 0:
        raise RuntimeError(output)
    return output.strip()


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
        domain=f"backup-bench-{uuid.uuid4().hex[:6]}.test",
        site_title="Bench Shop",
    )
    job_execute(job_id=store_order_paid(store_id=store.pk).pk)
    # Going live queued the store's first backup as a job of the store: run it here, as the backups worker
    # would, so the store is free for the measured ones.
    for job_id in store.backup_runs.filter(status="queued").values_list("job_id", flat=True):
        job_execute(job_id=job_id)
    return Store.objects.select_related("host", "plan").get(pk=store.pk)


def fill_database(store, megabytes: int) -> None:
    """About `megabytes` of order-like rows (1 KB of random hex each, which gzip halves: a harder case for the
    download's compression than a real shop's dump), through MariaDB's sequence engine."""
    sql(store, "CREATE TABLE bench_orders (id INT AUTO_INCREMENT PRIMARY KEY, payload TEXT) ENGINE=InnoDB")
    rows = megabytes * 1024
    payload = f"CONCAT({', '.join(['SHA2(RAND(), 512)'] * 8)})"  # 8 x 128 hex characters
    for start in range(0, rows, 10_000):
        count = min(10_000, rows - start)
        sql(store, f"INSERT INTO bench_orders (payload) SELECT {payload} FROM seq_1_to_{count}")  # noqa: S608


def platform_backup(store) -> float:
    from backups.models import BackupRun
    from backups.services.backup import backup_enqueue
    from provisioning.services import job_execute

    run = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    started = time.monotonic()
    job_execute(job_id=run.job_id)  # what the backups worker runs (provisioning.jobs.provisioning_job_run)
    elapsed = time.monotonic() - started
    run = BackupRun.objects.get(pk=run.pk)
    assert run.status == "succeeded", run.error
    return elapsed


def plain_restic_backup(staged: Path, tags: list[str]) -> float:
    from backups import restic

    started = time.monotonic()
    restic.backup(["db.sql", "files"], cwd=staged, tags=tags)
    return time.monotonic() - started


def platform_restore(store, snapshot_id: str) -> float:
    from backups.models import RestoreRun
    from backups.services.restore import restore_request
    from provisioning.services import job_execute

    run = restore_request(store_id=store.pk, snapshot_id=snapshot_id, scope="db")
    started = time.monotonic()
    job_execute(job_id=run.job_id)
    elapsed = time.monotonic() - started
    run = RestoreRun.objects.get(pk=run.pk)
    assert run.status == "succeeded", run.error
    return elapsed


def plain_import(store, dump_tar: Path) -> float:
    from backups.services.stack_io import IMPORT_COMMAND, IMPORT_DIR
    from provisioning import docker_client

    db = f"{store.slug}-db"
    started = time.monotonic()
    # Into the data volume, where IMPORT_COMMAND reads it: the container's root (and /tmp) is read-only.
    docker_client.container_archive_put(name=db, path=IMPORT_DIR, tar_path=str(dump_tar))
    code, output = docker_client.container_exec(name=db, command=IMPORT_COMMAND)
    if code != 0:
        raise RuntimeError(output)
    return time.monotonic() - started


def platform_download(store, snapshot_id: str) -> float:
    from backups.models import BackupDownload
    from backups.services.download import download_request
    from provisioning.services import job_execute

    download = download_request(store_id=store.pk, snapshot_id=snapshot_id)
    started = time.monotonic()
    job_execute(job_id=download.job_id)
    elapsed = time.monotonic() - started
    download = BackupDownload.objects.get(pk=download.pk)
    assert download.status == "succeeded", download.error
    return elapsed


def plain_restic_restore(snapshot_id: str) -> float:
    from backups import restic

    target = BENCH / "restored"
    shutil.rmtree(target, ignore_errors=True)
    started = time.monotonic()
    restic.restore(snapshot_id, into=target)
    elapsed = time.monotonic() - started
    shutil.rmtree(target, ignore_errors=True)
    return elapsed


def report(what: str, platform: list[float], baseline: list[float], baseline_name: str) -> None:
    p, b = statistics.median(platform), statistics.median(baseline)
    print(f"{what}: median {p:.2f} s (min {min(platform):.2f}, max {max(platform):.2f}, {len(platform)} runs)")
    print(f"  {baseline_name}: median {b:.2f} s (min {min(baseline):.2f}, max {max(baseline):.2f})")
    print(f"  ratio platform / baseline: {p / b:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()

    import MySQLdb

    MySQLdb.connect(host="127.0.0.1", user="root").cursor().execute(
        "CREATE DATABASE IF NOT EXISTS shophosting_bench CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    shutil.rmtree(BENCH / "restic", ignore_errors=True)
    (BENCH / "restic").mkdir(parents=True)
    (BENCH / "restic" / "password").write_text("bench\n")
    os.environ.update(
        RESTIC_REPOSITORY=str(BENCH / "restic" / "repository"),
        RESTIC_PASSWORD_FILE=str(BENCH / "restic" / "password"),
    )
    import django
    from django.conf import settings

    django.setup()
    settings.RESTIC_REPOSITORY = str(BENCH / "restic" / "repository")
    settings.RESTIC_PASSWORD_FILE = str(BENCH / "restic" / "password")
    settings.BACKUP_STAGING_DIR = str(BENCH / "staging")
    settings.BACKUP_TRANSFER_DIR = str(BENCH / "transfers")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from backups import restic
    from backups.services.records import store_tags
    from backups.services.stack_io import tar_single_file
    from billing.services.plans import plan_catalogue_seed
    from provisioning import docker_client
    from provisioning.images import images_build
    from provisioning.steps import stack_remove
    from stores.services import store_release

    plan_catalogue_seed()
    images_build(log=lambda message: None)
    restic.repository_init()
    store = provision_store()
    try:
        fill_database(store, args.megabytes)
        platform_backup(store)  # the first, full backup is not what is measured
        snapshot_id = store.backup_runs.filter(status="succeeded").first().snapshot_id
        staged = BENCH / "staged"
        shutil.rmtree(staged, ignore_errors=True)
        (staged / "files").mkdir(parents=True)
        restic.dump(snapshot_id, "/db.sql", into=staged / "db.sql")
        restic.dump(snapshot_id, "/files/wp-content.tar", into=staged / "files" / "wp-content.tar")
        print(f"database dump: {(staged / 'db.sql').stat().st_size / 1e6:.1f} MB", flush=True)
        restic.backup(["db.sql", "files"], cwd=staged, tags=store_tags(store))  # warm the baseline too
        tar_single_file(staged / "db.sql", "shophosting-restore.sql", staged / "dump.tar")

        backup, backup_base, restore, restore_base, download, download_base = [], [], [], [], [], []
        for n in range(args.runs):
            backup.append(platform_backup(store))
            backup_base.append(plain_restic_backup(staged, store_tags(store)))
            restore.append(platform_restore(store, snapshot_id))
            restore_base.append(plain_import(store, staged / "dump.tar"))
            download.append(platform_download(store, snapshot_id))
            download_base.append(plain_restic_restore(snapshot_id))
            print(
                f"run {n + 1}: backup {backup[-1]:.2f} s (plain restic {backup_base[-1]:.2f} s), "
                f"db restore {restore[-1]:.2f} s (plain import {restore_base[-1]:.2f} s), "
                f"download {download[-1]:.2f} s (plain restic restore {download_base[-1]:.2f} s)",
                flush=True,
            )
        report("incremental backup of an unchanged store", backup, backup_base, "plain restic backup, staged files")
        report(
            f"database-only restore ({args.megabytes} MB)", restore, restore_base, "plain import into the db container"
        )
        latest = store.downloads.filter(status="succeeded").first()
        sizes = f"database.sql.gz {latest.database_bytes / 1e6:.1f} MB, files.tar.gz {latest.files_bytes / 1e6:.1f} MB"
        print(f"download: {sizes}")
        report(f"preparing a download ({args.megabytes} MB store)", download, download_base, "plain restic restore")
    finally:
        stack_remove(store, lambda message: None)
        store_release(store_id=store.pk)
        shutil.rmtree(BENCH / "staged", ignore_errors=True)
        shutil.rmtree(BENCH / "transfers", ignore_errors=True)
        docker_client.labelled_objects_remove(label=f"shophosting.store={store.pk}")


if __name__ == "__main__":
    main()
