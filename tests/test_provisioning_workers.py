"""Provisioning with real worker processes: a worker killed mid-job, then a retry; ten orders at once.

Separate `manage.py rqworker` processes must see the test's data, so these tests write it for real
(autocommit, no test transaction) and delete what they made afterwards. Django's transactional tests
would flush every table instead, data-migration rows included, which breaks a reused test database."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from accounts.services import customer_create
from backups.models import BackupRun
from provisioning import docker_client
from provisioning.models import JobStep, ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.services import jobs_reap_stale, store_retry
from stores.models import Host, Store
from stores.services import host_local_ensure, store_create
from tests.conftest import ROOT

pytestmark = [pytest.mark.docker]


@pytest.fixture
def start_worker(settings):
    """Starts real `manage.py rqworker <queue>` processes (provisioning unless told) on the test database;
    kills them after."""
    processes = []
    database = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shophosting.settings.test",
        "DATABASE_URL": f"mysql://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
    }

    def start(queue: str = "provisioning") -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", queue],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: killing it kills the work horse too
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Real database writes for this test; every store and customer it made is deleted afterwards."""
    from accounts.models import User
    from billing.models import Plan
    from billing.services.plans import plan_catalogue_seed

    with django_db_blocker.unblock():
        if not connection.settings_dict["NAME"].startswith("test_"):
            pytest.fail(
                "pytest-django set up no test database: select at least one database test with these "
                "(for example the whole module)"
            )
        first_user = (User.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        first_store = (Store.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        plan_catalogue_seed()  # idempotent; the catalogue may stay
        counter = iter(range(10_000))

        def customer():
            return customer_create(email=f"worker-test-{next(counter)}@example.com", password="pw-123-pw-456")

        yield {
            "host": host_local_ensure(docker_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")),
            "plan": Plan.objects.get(slug="woocommerce-commerce-core"),
            "customer": customer,
        }
        # Their first backups (queued when they went live) would outlive them, store-less, as queued runs.
        BackupRun.objects.filter(store__pk__gte=first_store).delete()
        Store.objects.filter(pk__gte=first_store).delete()
        User.objects.filter(pk__gte=first_user).delete()
        connection.close()


@pytest.mark.django_db
def test_one_host_row_for_the_local_engine_exists_by_default():
    host = Host.objects.get(name="local")
    assert host.active and host.bind_address == "127.0.0.1"
    assert host.docker_url.startswith("unix://")


def kill_with_work_horse(worker: subprocess.Popen) -> None:
    """SIGKILL a worker and the work horse it forked (rq puts the horse in a session of its own)."""
    horses = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == worker.pid:  # field 4 of /proc/<pid>/stat: the parent pid
            horses.append(int(stat.parent.name))
    for pid in [worker.pid, *horses]:
        os.kill(pid, signal.SIGKILL)
    worker.wait()


def wait_for(predicate, timeout: float, what: str, *, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_worker_killed_mid_job_then_retry_gives_a_live_store_and_no_leaks(
    committed, store_images, clean_test_stores, start_worker, run_provisioning_worker
):
    store = store_create(
        customer=committed["customer"](), plan=committed["plan"], domain="killed.test", site_title="Killed Shop"
    )
    job = store_order_paid(store_id=store.pk)
    worker = start_worker()
    wait_for(
        lambda: JobStep.objects.filter(job=job, name="app", status=JobStep.Status.RUNNING).exists(),
        60,
        "the job to reach the app step",
    )
    kill_with_work_horse(worker)
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.RUNNING  # nobody is left to say otherwise

    # The reaper fails it once it is past its timeout; the store shows the failing step.
    assert jobs_reap_stale(now=timezone.now() + timezone.timedelta(seconds=job.timeout_seconds + 1)) == [job.pk]
    store.refresh_from_db()
    assert store.status == Store.Status.FAILED
    assert "Start the web server" in store.status_message
    port = store.port

    retry = store_retry(store_id=store.pk)
    run_provisioning_worker()
    retry.refresh_from_db()
    store.refresh_from_db()
    assert retry.status == ProvisioningJob.Status.SUCCEEDED, retry.error
    assert store.status == Store.Status.ACTIVE and store.port == port

    objects = docker_client.labelled_objects(label=f"shophosting.store={store.pk}")
    assert objects == {
        "containers": [f"{store.slug}-cache", f"{store.slug}-db", f"{store.slug}-web"],
        "networks": [f"{store.slug}-net"],
        # the data volumes, and each password-reading container's secret files (provisioning/README.md)
        "volumes": [
            f"{store.slug}-db",
            f"{store.slug}-db-secrets",
            f"{store.slug}-web-secrets",
            f"{store.slug}-wp-content",
        ],
    }
    assert Store.objects.filter(host=committed["host"], port=port).count() == 1


def test_ten_orders_at_once_on_two_workers_give_ten_live_stores_on_distinct_ports(
    committed, store_images, clean_test_stores, start_worker
):
    stores = [
        store_create(
            customer=committed["customer"](),
            plan=committed["plan"],
            domain=f"shop{n}.concurrent.test",
            site_title=f"Shop {n}",
        )
        for n in range(10)
    ]
    for store in stores:
        store_order_paid(store_id=store.pk)
    start_worker()
    start_worker()
    # The provisioning jobs; each store's first backup, queued as it went live, waits for the backups queue.
    setups = ProvisioningJob.objects.filter(store__in=stores, kind=ProvisioningJob.Kind.PROVISION)
    wait_for(
        lambda: setups.filter(status__in=ProvisioningJob.ACTIVE).count() == 0,
        600,  # about 150 s on a quiet machine; the bound only matters when something hangs
        "all ten jobs to finish",
    )
    failed = list(setups.exclude(status="succeeded").values("error"))
    assert failed == [] and setups.count() == 10
    # Queued by each job's worker after the commit that made its store live: a moment after the job reads
    # succeeded, so the last one may not be there yet when the wait above ends.
    first_backups = ProvisioningJob.objects.filter(store__in=stores, kind="backup", status="queued")
    wait_for(lambda: first_backups.count() == 10, 30, "each store's first backup to be queued")
    live = Store.objects.filter(pk__in=[s.pk for s in stores])
    assert set(live.values_list("status", flat=True)) == {Store.Status.ACTIVE}
    assert len(set(live.values_list("port", flat=True))) == 10
