"""Faults the platform must survive, each on the real component: the Docker engine stopped in the middle of a
provisioning, Redis restarted (empty) with jobs queued and one running, MariaDB restarted while a job runs.

Worker processes must see the test's data, so these tests write for real (`committed`, as in
tests/test_provisioning_workers.py) and delete what they made afterwards. Redis and MariaDB are private
instances started here, so restarting them disturbs no other run; dockerd is the machine's, so run this
module only under the Docker tests' lock (`flock /tmp/docker-tests.lock bin/test tests/test_faults.py`), and
select it whole: its one database test is what makes pytest-django set up the test database.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import django_rq
import pytest
import redis
import requests
from django.db import DatabaseError, connection
from django.utils import timezone

from provisioning import docker_client, liveness, steps
from provisioning.exceptions import DockerUnavailable
from provisioning.models import JobStep, ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.services import (
    job_enqueue,
    jobs_reap_stale,
    jobs_requeue_lost,
    store_retry,
    store_tls_ensure,
    stores_tls_retry_lost,
)
from stores.models import Store
from stores.services import store_create
from tests.conftest import ROOT, require_or_skip
from tests.plugins import engines
from tests.test_provisioning_workers import committed, kill_with_work_horse, wait_for  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.docker]
Job = ProvisioningJob
LOG_DIR = ROOT / "var" / "test" / "faults"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def job_status(job_id: int) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job_id)


def step_running(job_id: int, name: str) -> bool:
    return JobStep.objects.filter(job_id=job_id, name=name, status=JobStep.Status.RUNNING).exists()


def answers_http(store: Store) -> bool:
    try:
        response = requests.get(f"http://127.0.0.1:{store.port}/", headers={"Host": store.domain}, timeout=5)
    except requests.RequestException:
        return False
    return response.status_code < 500


def assert_live_without_leaks(store: Store, *, port: int) -> None:
    """Active on the port it had, answering, and exactly its own Docker objects: nothing left over from the
    interrupted attempt, and no other container publishing its port."""
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE and store.port == port
    assert answers_http(store)
    assert docker_client.labelled_objects(label=f"shophosting.store={store.pk}") == {
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
    publishing = docker_client.client().containers.list(all=True, filters={"publish": str(port)})
    assert [c.name for c in publishing] == [f"{store.slug}-web"]
    assert Store.objects.filter(host=store.host, port=port).count() == 1


@pytest.fixture
def start_worker():
    """Starts `manage.py rqworker provisioning` processes on the test database, or on the Redis and MariaDB
    given; kills them (and their work horses) afterwards. Their logs go to var/test/faults/."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    processes = []

    def start(*, redis_url: str | None = None, database_port: int | None = None) -> subprocess.Popen:
        database = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shophosting.settings.test",
            "DATABASE_URL": (
                f"mysql://{database['USER']}@{database['HOST']}:{database_port or database['PORT']}/{database['NAME']}"
            ),
        }
        if redis_url:
            env["REDIS_URL"] = redis_url
        log = (LOG_DIR / f"worker-{len(processes)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "provisioning"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            kill_with_work_horse(process)


# --- The Docker engine ---------------------------------------------------------------------------


class Dockerd:
    """The machine's dockerd, stopped and started again the way bin/lib.sh started it: its own command line,
    in a session of its own, logging to var/log/dockerd.log."""

    def __init__(self, pid: int):
        self.pid = pid
        self.argv = [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]

    @staticmethod
    def answers() -> bool:
        try:
            docker_client.engine_info()
        except docker_client.DockerUnavailable:
            return False
        return True

    def running(self) -> bool:
        """False once dockerd has exited. bin/test starts dockerd and then execs pytest, so this process may be
        its parent: reap it here, and count an unreaped zombie as exited, since /proc keeps its entry."""
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass  # not our child: init reaps it
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        return state != "Z"

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)  # as `systemctl stop docker`: the API closes, then the containers stop
        wait_for(lambda: not self.running(), 60, "dockerd to exit", every=0.2)

    def start(self) -> None:
        with (ROOT / "var" / "log" / "dockerd.log").open("a") as log:
            process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self.pid = process.pid
        wait_for(self.answers, 60, "dockerd to answer again", every=0.5)


@pytest.fixture
def dockerd(docker_engine):
    if os.environ.get("DOCKER_HOST") or os.geteuid() != 0:
        require_or_skip("a local dockerd", "this test restarts the machine's engine (bin/test starts one as root)")
    found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    found = [pid for pid in found if not engines.is_second_engine(int(pid))]  # tests/plugins/engines.py's own
    if len(found) != 1:
        require_or_skip("exactly one dockerd", f"found {len(found)} dockerd processes")
    engine = Dockerd(int(found[0]))
    yield engine
    if not engine.running() or not engine.answers():
        engine.start()  # never leave the machine without its engine


def test_dockerd_stopped_mid_provision_fails_the_step_clearly_and_a_retry_leaves_a_live_store_and_no_leaks(
    committed,  # noqa: F811
    store_images,
    clean_test_stores,
    start_worker,
    dockerd,
):
    store = store_create(customer=committed["customer"](), plan=committed["plan"], domain="engine-stop.test")
    job = store_order_paid(store_id=store.pk)
    start_worker()
    wait_for(lambda: step_running(job.pk, "install"), 120, "the job to reach the install step", every=0.05)

    dockerd.stop()
    try:
        wait_for(lambda: job_status(job.pk) == Job.Status.FAILED, 60, "the job to fail")
        store.refresh_from_db()
        if not answers_http(store):  # its containers stopped with the engine (a dockerd without --live-restore)
            # What the app step meets when the engine stops under it: the engine is named within seconds,
            # not after the wait for HTTP times out.
            started = time.monotonic()
            with pytest.raises(DockerUnavailable, match="the Docker engine at .* does not answer"):
                steps.wait_http(store, lambda message: None, timeout=60)
            assert time.monotonic() - started < 10
    finally:
        dockerd.start()

    job.refresh_from_db()
    store.refresh_from_db()
    install = job.steps.get(name="install")
    assert install.status == JobStep.Status.FAILED
    assert job.error.startswith("step “Install the store application” failed: DockerUnavailable: ")
    assert "Docker engine" in job.error.splitlines()[0], job.error
    assert store.status == Store.Status.FAILED
    assert "Install the store application" in store.status_message

    retry = store_retry(store_id=store.pk)
    wait_for(lambda: job_status(retry.pk) not in Job.ACTIVE, 180, "the retry to finish")
    retry.refresh_from_db()
    assert retry.status == Job.Status.SUCCEEDED, retry.error
    assert_live_without_leaks(store, port=store.port)


# --- Redis ---------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this test on a loopback port, keeping nothing on disk (like the platform's own)."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                return redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
            except redis.RedisError:
                return False

        wait_for(answers, 10, "the private redis-server to answer")

    def crash(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def private_redis(tmp_path, settings):
    server = PrivateRedis(tmp_path)
    server.start()
    settings.RQ_QUEUES = {name: {**config, "URL": server.url} for name, config in settings.RQ_QUEUES.items()}
    yield server
    server.crash()


def test_a_running_worker_registers_again_after_redis_restarts_empty(tmp_path):
    """Health reads the workers Redis knows of; a Redis restart used to make every running worker invisible
    (and /healthz unhealthy) until the workers themselves were restarted."""
    from django.conf import settings as django_settings
    from django.utils.module_loading import import_string

    from shophosting.core.queues import workers

    server = PrivateRedis(tmp_path)
    server.start()
    try:
        connection_ = redis.Redis.from_url(server.url)
        worker = import_string(django_settings.RQ["WORKER_CLASS"])(["default"], connection=connection_)
        worker.register_birth()
        assert [w.name for w in workers(connection=connection_)] == [worker.name]

        server.crash()
        server.start()  # the same port, empty
        assert workers(connection=connection_) == []
        worker.heartbeat()  # what the running worker does next

        [seen] = workers(connection=connection_)
        assert seen.name == worker.name and seen.alive and seen.queues == ["default"]
    finally:
        server.crash()


def test_redis_restart_loses_no_job_and_the_running_one_is_reaped_then_retried(
    committed,  # noqa: F811
    store_images,
    clean_test_stores,
    start_worker,
    private_redis,
):
    running = store_create(customer=committed["customer"](), plan=committed["plan"], domain="redis-running.test")
    running_job = store_order_paid(store_id=running.pk)
    worker = start_worker(redis_url=private_redis.url)
    wait_for(lambda: step_running(running_job.pk, "app"), 120, "the job to reach the app step")
    # Two more operations wait behind it: abandoned signups being torn down (no containers to remove).
    waiting = [
        store_create(customer=committed["customer"](), plan=committed["plan"], domain=f"redis-queued-{n}.test")
        for n in range(2)
    ]
    queued_jobs = [job_enqueue(store_id=store.pk, kind=Job.Kind.TEARDOWN) for store in waiting]
    assert django_rq.get_queue("provisioning").count == 2
    assert jobs_reap_stale() == []  # its worker, another process, holds it: nothing to reap

    # Redis dies and comes back empty. A busy worker meets the outage when it next sends its heartbeat and
    # exits (rq does not catch that); systemd then stops the unit's whole cgroup, work horse included
    # (KillMode=control-group), and starts the worker again.
    private_redis.crash()
    kill_with_work_horse(worker)
    private_redis.start()
    assert django_rq.get_queue("provisioning").count == 0
    assert job_status(running_job.pk) == Job.Status.RUNNING
    assert {job_status(job.pk) for job in queued_jobs} == {Job.Status.QUEUED}

    # What the minute's cron runs: nothing queued in the database stays lost, nothing running stays orphaned.
    reaped = []
    wait_for(lambda: reaped.extend(jobs_reap_stale()) or reaped, 10, "the reaper to see the worker gone")
    assert reaped == [running_job.pk]
    assert sorted(jobs_requeue_lost(now=timezone.now() + timedelta(minutes=2))) == sorted(j.pk for j in queued_jobs)
    start_worker(redis_url=private_redis.url)
    wait_for(
        lambda: all(job_status(job.pk) == Job.Status.SUCCEEDED for job in queued_jobs), 60, "the queued jobs to run"
    )
    assert set(Store.objects.filter(pk__in=[s.pk for s in waiting]).values_list("status", flat=True)) == {
        Store.Status.DELETED
    }

    running_job.refresh_from_db()
    running.refresh_from_db()
    assert running_job.status == Job.Status.FAILED
    assert "the worker running the job is gone" in running_job.error
    assert running_job.steps.get(name="app").status == JobStep.Status.FAILED
    assert running.status == Store.Status.FAILED and "Start the web server" in running.status_message

    retry = store_retry(store_id=running.pk)
    wait_for(lambda: job_status(retry.pk) not in Job.ACTIVE, 180, "the retry to finish")
    retry.refresh_from_db()
    assert retry.status == Job.Status.SUCCEEDED, retry.error
    assert_live_without_leaks(running, port=running.port)


def test_redis_restart_loses_no_scheduled_tls_retry(committed, private_redis, settings):  # noqa: F811
    # The CA does not answer, so the certificate waits for a retry that RQ schedules in Redis.
    settings.ACME_DIRECTORY_URL = f"https://127.0.0.1:{free_port()}/dir"
    store = store_create(customer=committed["customer"](), plan=committed["plan"], domain="tls-later.test")
    Store.objects.filter(pk=store.pk).update(status=Store.Status.ACTIVE)
    store = store_tls_ensure(store_id=store.pk)
    assert store.tls_status == Store.TLS.PENDING
    queue = django_rq.get_queue("provisioning")
    assert queue.scheduled_job_registry.count == 1
    overdue = store.tls_next_attempt_at + timedelta(minutes=2)
    assert stores_tls_retry_lost(now=overdue) == []  # RQ still holds it: nothing twice

    private_redis.crash()
    private_redis.start()
    assert queue.scheduled_job_registry.count == 0

    assert stores_tls_retry_lost(now=overdue) == [store.pk]
    assert [(job.func_name, job.args) for job in queue.jobs] == [("provisioning.jobs.store_tls_retry", (store.pk,))]
    assert stores_tls_retry_lost(now=overdue) == []


# --- MariaDB -------------------------------------------------------------------------------------


class PrivateMariaDB:
    """A mariadbd of this test on a loopback port, holding a copy of the test database. Durable enough for a
    clean restart; tuned for loading the copy quickly."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--skip-grant-tables",
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                f"--socket={self.directory / 'sock'}",
                f"--pid-file={self.directory / 'pid'}",
                f"--log-error={self.directory / 'error.log'}",
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=8M",
                "--innodb-file-per-table=0",
                "--innodb-doublewrite=0",
                "--innodb-flush-log-at-trx-commit=2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, 30, "the private mariadbd to answer", every=0.2)

    def answers(self) -> bool:
        import MySQLdb

        try:
            MySQLdb.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
        except MySQLdb.Error:
            return False
        return True

    def stop(self) -> None:
        self.process.terminate()  # a clean shutdown, as `systemctl restart mariadb` does
        self.process.wait(timeout=60)

    def load(self, *, name: str, source: dict) -> None:
        subprocess.run(
            ["mariadb", "-uroot", "-h127.0.0.1", f"-P{self.port}", "-e", f"CREATE DATABASE `{name}`"], check=True
        )
        dump = subprocess.Popen(
            ["mariadb-dump", "-uroot", f"-h{source['HOST']}", f"-P{source['PORT']}", "--single-transaction", name],
            stdout=subprocess.PIPE,
        )
        subprocess.run(["mariadb", "-uroot", "-h127.0.0.1", f"-P{self.port}", name], stdin=dump.stdout, check=True)
        assert dump.wait() == 0


@pytest.fixture
def private_mariadb(committed):  # noqa: F811
    """A private MariaDB with a copy of the test database; this process's connection points at it meanwhile."""
    directory = Path(tempfile.mkdtemp(prefix="shfault-db-"))  # short: the socket path has a length limit
    server = PrivateMariaDB(directory)
    server.start()
    settings_dict = connection.settings_dict
    original = (settings_dict["HOST"], settings_dict["PORT"])
    try:
        server.load(name=settings_dict["NAME"], source=settings_dict)
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", server.port
        yield server
    finally:
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = original
        if server.process.poll() is None:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def reconnecting(predicate):
    """`predicate`, or False while this process's own connection is down with the restart."""

    def check() -> bool:
        try:
            return predicate()
        except DatabaseError:
            connection.close()
            return False

    return check


def test_mariadb_restart_while_a_job_runs_leaves_no_store_stuck(
    committed,  # noqa: F811
    store_images,
    clean_test_stores,
    start_worker,
    private_mariadb,
):
    store = store_create(customer=committed["customer"](), plan=committed["plan"], domain="db-restart.test")
    job = store_order_paid(store_id=store.pk)
    start_worker(database_port=private_mariadb.port)
    wait_for(lambda: step_running(job.pk, "app"), 120, "the job to reach the app step")
    assert jobs_reap_stale() == []

    private_mariadb.stop()
    private_mariadb.start()

    # The job ends by itself, or at the latest when the minute's reaper looks (called here every second).
    def job_ended() -> bool:
        if job_status(job.pk) in Job.ACTIVE:
            jobs_reap_stale()
        return job_status(job.pk) not in Job.ACTIVE

    wait_for(reconnecting(job_ended), 90, "the job to end", every=1)
    job.refresh_from_db()
    store.refresh_from_db()
    if job.status == Job.Status.FAILED:
        assert job.error.startswith("step “"), job.error
        assert store.status == Store.Status.FAILED
        retry = store_retry(store_id=store.pk)
        wait_for(lambda: job_status(retry.pk) not in Job.ACTIVE, 180, "the retry to finish")
        retry.refresh_from_db()
        assert retry.status == Job.Status.SUCCEEDED, retry.error
    assert_live_without_leaks(store, port=store.port)


# --- The reaper's rule, without a fault -----------------------------------------------------------


@pytest.mark.django_db
def test_a_running_job_is_reaped_as_soon_as_no_worker_holds_it_and_not_before(recorded_active_store):
    store = recorded_active_store
    job = Job.objects.create(store=store, kind=Job.Kind.RESTART, status=Job.Status.RUNNING, started_at=timezone.now())
    with liveness.job_hold(job_id=job.pk) as held:
        assert held
        with liveness.job_hold(job_id=job.pk) as second:
            assert not second  # one worker per job
        assert jobs_reap_stale() == []
    assert jobs_reap_stale() == [job.pk]
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "the worker running the job is gone" in job.error
