"""One operation at a time per store, whatever app runs it: provisioning jobs of every kind, backups, restores
and backup verification refuse to start beside each other, with a clear message for the customer and staff.
Recorded runs that lost their enqueue (a killed process, a Redis that lost data) are enqueued again, and
runs whose worker died are failed, so nothing holds a store for ever."""

import contextlib
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import django_rq
import pytest
from django.urls import reverse
from django.utils import timezone

from backups import services as backup_services
from backups.models import BackupRun, RestoreRun, RunStatus
from provisioning import docker_client
from provisioning.exceptions import JobConflict
from provisioning.models import ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.services import job_enqueue, jobs_requeue_lost
from shophosting.core.queues import rq_job_pending
from stores.exceptions import StoreBusy
from stores.models import Store
from stores.operations import store_lease, store_operation_active
from stores.services import store_create, store_transition
from tests.conftest import ROOT
from tests.test_backups import back_up, insert_post, posts, restore, sql
from tests.test_provisioning_workers import committed, wait_for  # noqa: F401 - committed is a fixture


@pytest.mark.django_db
def test_a_queued_restore_refuses_every_provisioning_job_with_a_clear_message(
    recorded_active_store, client, staff_user, django_capture_on_commit_callbacks
):
    store = recorded_active_store
    RestoreRun.objects.create(store=store, snapshot_id="a" * 64, scope=RestoreRun.Scope.ALL)

    for kind in ProvisioningJob.Kind.values:
        with pytest.raises(JobConflict, match="A restore of this store is already queued"):
            job_enqueue(store_id=store.pk, kind=kind)
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE and not store.jobs.exists()  # a refused teardown changed nothing

    # The customer's restart says why, in words.
    client.force_login(store.customer)
    page = client.post(reverse("stores:restart", args=[store.pk]), follow=True).content.decode()
    assert "The store cannot be restarted now: A restore of this store is already queued" in page
    # Staff: the suspend action and the delete page refuse with the same reason, and nothing is queued.
    client.force_login(staff_user)
    changelist = reverse("admin:stores_store_changelist")
    page = client.post(changelist, {"action": "suspend", "_selected_action": [store.pk]}, follow=True)
    assert f"{store.domain.capitalize()}: A restore of this store is already queued" in page.content.decode()
    delete = reverse("admin:stores_store_delete", args=[store.pk])
    page = client.post(delete, {"confirm": store.domain}, follow=True).content.decode()
    assert f"Not deleted: {store.domain}: A restore of this store is already queued" in page
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE and not store.jobs.exists()


@pytest.mark.django_db
def test_a_provisioning_job_refuses_backups_and_a_backup_refuses_jobs(recorded_active_store, client):
    store = recorded_active_store
    job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART)

    with pytest.raises(backup_services.BackupConflict, match="already has an active job"):
        backup_services.backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    client.force_login(store.customer)
    page = client.post(reverse("backups:create", args=[store.pk]), follow=True).content.decode()
    assert f"already has an active job (#{job.pk}, restart, queued since" in page
    assert not store.backup_runs.exists()

    ProvisioningJob.objects.filter(pk=job.pk).update(status=ProvisioningJob.Status.SUCCEEDED)
    backup_services.backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    with pytest.raises(JobConflict, match="A backup of this store is already queued"):
        job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.SUSPEND)


@pytest.mark.django_db
def test_verification_holds_the_store_and_waits_for_other_operations(recorded_active_store):
    store = recorded_active_store
    with store_lease(store_id=store.pk, holder="A check that a backup restores", seconds=600):
        with pytest.raises(JobConflict, match="A check that a backup restores is running on this store"):
            job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.TEARDOWN)
        with pytest.raises(backup_services.BackupConflict, match="A check that a backup restores is running"):
            backup_services.backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    assert store_operation_active(store_id=store.pk) is None  # released on the way out

    # A lease whose worker died expires by itself.
    Store.objects.filter(pk=store.pk).update(lease_holder="A check", lease_expires_at=timezone.now())
    job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART)

    # Verification does not start while a job runs: the snapshot is neither verified nor failed.
    snapshot = BackupRun.objects.create(store=store, kind="manual", status="succeeded", snapshot_id="b" * 64)
    with pytest.raises(StoreBusy, match="already has an active job"):
        with store_lease(store_id=store.pk, holder="A check that a backup restores", seconds=600):
            pass
    assert backup_services.backups_verify(store_id=store.pk) == []
    snapshot.refresh_from_db()
    assert snapshot.verified_at is None and snapshot.verify_error == ""
    assert store_operation_active(store_id=store.pk).startswith(f"This store already has an active job (#{job.pk}")


@pytest.mark.django_db
def test_runs_and_jobs_that_lost_their_enqueue_run_and_dead_workers_release_the_store(recorded_active_store):
    """In a test no transaction commits, so on_commit never enqueues: exactly the state a web process
    killed between its commit and its enqueue leaves behind."""
    store = recorded_active_store
    later = timezone.now() + timedelta(minutes=2)
    job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART)
    restore = backup_services.RestoreRun.objects.create(store=store, snapshot_id="c" * 64, scope="db")
    queues = [django_rq.get_queue(name) for name in ("provisioning", "backups")]
    try:
        assert not rq_job_pending(queue="provisioning", job_id=f"provisioning-job-{job.pk}")
        assert jobs_requeue_lost(now=timezone.now()) == []  # within the grace period: its enqueue may be on its way
        assert jobs_requeue_lost(now=later) == [job.pk]
        assert rq_job_pending(queue="provisioning", job_id=f"provisioning-job-{job.pk}")
        assert jobs_requeue_lost(now=later) == []  # enqueued once, not twice

        assert backup_services.runs_recover(now=later)["requeued"] == [restore.pk]
        assert rq_job_pending(queue="backups", job_id=f"restore-{restore.pk}")
        assert backup_services.runs_recover(now=later)["requeued"] == []

        # A restore whose worker died, and the pre-restore backup it left queued, are failed after the timeout.
        pre = BackupRun.objects.create(store=store, kind=BackupRun.Kind.PRE_RESTORE)
        long_ago = timezone.now() - timedelta(days=1)
        RestoreRun.objects.filter(pk=restore.pk).update(
            status=RunStatus.RUNNING, started_at=long_ago, pre_restore_backup=pre
        )
        BackupRun.objects.filter(pk=pre.pk).update(created_at=long_ago)
        ProvisioningJob.objects.filter(pk=job.pk).update(status=ProvisioningJob.Status.SUCCEEDED)
        assert store_operation_active(store_id=store.pk) is not None
        assert sorted(backup_services.runs_recover(now=later)["reaped"]) == sorted([pre.pk, restore.pk])
        restore.refresh_from_db()
        assert restore.status == RunStatus.FAILED and "timeout" in restore.error
        assert store_operation_active(store_id=store.pk) is None
    finally:
        for queue in queues:
            queue.empty()


# --- On a real store: Docker, restic, nginx ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_running_backup_or_restore_is_reaped_as_soon_as_no_worker_holds_it_and_not_before(recorded_active_store):
    """A backup or restore whose worker died used to hold its store for the restic timeout (over an hour)."""
    from provisioning import liveness

    store = recorded_active_store
    now = timezone.now()
    backup = BackupRun.objects.create(store=store, kind=BackupRun.Kind.MANUAL, status=RunStatus.RUNNING, started_at=now)
    restore = RestoreRun.objects.create(
        store=store, snapshot_id="b" * 64, scope="db", status=RunStatus.RUNNING, started_at=now
    )
    with (
        liveness.operation_hold(key=f"backup.{backup.pk}") as backup_held,
        liveness.operation_hold(key=f"restore.{restore.pk}") as restore_held,
    ):
        assert backup_held and restore_held
        assert backup_services.runs_recover()["reaped"] == []  # their workers are alive
    assert sorted(backup_services.runs_recover()["reaped"]) == sorted([backup.pk, restore.pk])
    restore.refresh_from_db()
    assert restore.status == RunStatus.FAILED and "the worker running it is gone" in restore.error
    assert store_operation_active(store_id=store.pk) is None


@pytest.mark.django_db
def test_a_redis_outage_at_enqueue_keeps_the_request_working_and_the_job_runs_once_redis_is_back(
    recorded_active_store, client, monkeypatch, django_capture_on_commit_callbacks
):
    """The job row commits first; Redis refusing the enqueue must not turn the customer's click into a 500,
    and the recovery check enqueues the recorded job once Redis answers again."""
    import django_rq.settings

    store = recorded_active_store
    queue = django_rq.get_queue("provisioning")
    # A Redis that is down: the provisioning queue points at a closed loopback port for the request.
    monkeypatch.setitem(django_rq.settings.QUEUES, "provisioning", {"URL": "redis://127.0.0.1:9/0"})
    client.force_login(store.customer)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("stores:restart", args=[store.pk]))
        assert response.status_code == 302
        [job] = store.jobs.all()
        assert job.status == ProvisioningJob.Status.QUEUED and not job.rq_job_id

        monkeypatch.undo()  # Redis answers again
        assert not rq_job_pending(queue="provisioning", job_id=f"provisioning-job-{job.pk}")
        assert jobs_requeue_lost(now=timezone.now() + timedelta(minutes=2)) == [job.pk]
        assert rq_job_pending(queue="provisioning", job_id=f"provisioning-job-{job.pk}")
    finally:
        queue.empty()


def container_states(store: Store) -> dict[str, str]:
    found = docker_client.client().containers.list(all=True, filters={"label": f"shophosting.store={store.pk}"})
    return {c.name.removeprefix(f"{store.slug}-"): c.status for c in found}


def stopped_sql(store: Store, statement: str) -> str:
    """A query on a stopped store's database: started for the question, stopped again."""
    container = docker_client.client().containers.get(f"{store.slug}-db")
    container.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            code, output = docker_client.container_exec(
                name=container.name,
                command=["sh", "-c", 'mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" wordpress -N -B -e "$0"', "SELECT 1"],
            )
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return sql(store, statement)
    finally:
        container.stop(timeout=10)


def stopped_posts(store: Store) -> list[str]:
    query = "SELECT post_title FROM wp_posts WHERE post_status='publish' ORDER BY ID"
    return stopped_sql(store, query).splitlines()


def uploads(store: Store) -> dict[str, str]:
    """sha256 of every file under wp-content/uploads, read from the web container even when it is stopped."""
    container = docker_client.client().containers.get(f"{store.slug}-web")
    stream, _ = container.get_archive("/var/www/html/wp-content/uploads")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        return {
            member.name: hashlib.sha256(archive.extractfile(member).read()).hexdigest()
            for member in archive.getmembers()
            if member.isfile()
        }


def upload_put(store: Store, name: str, content: bytes) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directory = tarfile.TarInfo("uploads")
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(directory)
        info = tarfile.TarInfo(f"uploads/{name}")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    container = docker_client.client().containers.get(f"{store.slug}-web")
    assert container.put_archive("/var/www/html/wp-content", buffer.getvalue())


@pytest.mark.docker
@pytest.mark.django_db
def test_a_suspended_store_restores_database_files_or_both_and_stays_stopped(
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    run_provisioning_worker,
    run_backups_worker,
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    store = store_create(customer=user_factory(), plan=woo_plan, domain="suspended.test", site_title="Suspended")
    with capture(execute=True):
        store_order_paid(store_id=store.pk)
    run_provisioning_worker()
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE, store.jobs.last().error

    insert_post(store, "Kept post")
    upload_put(store, "kept.txt", b"kept")
    original_posts, original_files = posts(store), uploads(store)
    snapshot = back_up(store, BackupRun.Kind.MANUAL, run_backups_worker, capture)
    # Changed after the backup; then the subscription ends and the store is suspended.
    sql(store, "DELETE FROM wp_posts WHERE post_title = 'Kept post'")
    insert_post(store, "Later post")
    upload_put(store, "later.txt", b"later")
    damaged_posts, damaged_files = posts(store), uploads(store)
    assert damaged_posts != original_posts and damaged_files != original_files
    with capture(execute=True):
        job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.SUSPEND)
    run_provisioning_worker()
    store.refresh_from_db()
    assert store.status == Store.Status.SUSPENDED
    stopped = {role: "exited" for role in container_states(store)}
    assert container_states(store) == stopped

    # The database only: the snapshot's rows are back, the files untouched, and the store still stopped.
    run = restore(store, snapshot.snapshot_id, RestoreRun.Scope.DATABASE, run_backups_worker, capture)
    assert "stays stopped" in run.log and run.pre_restore_backup.status == RunStatus.SUCCEEDED
    assert container_states(store) == stopped
    assert uploads(store) == damaged_files
    assert stopped_posts(store) == original_posts

    # The files only.
    stopped_sql(store, "DELETE FROM wp_posts WHERE post_title = 'Kept post'")
    restore(store, snapshot.snapshot_id, RestoreRun.Scope.FILES, run_backups_worker, capture)
    assert container_states(store) == stopped
    assert uploads(store) == original_files
    assert "Kept post" not in stopped_posts(store)

    # Both.
    upload_put(store, "later.txt", b"later")
    restore(store, snapshot.snapshot_id, RestoreRun.Scope.ALL, run_backups_worker, capture)
    assert container_states(store) == stopped
    assert uploads(store) == original_files and stopped_posts(store) == original_posts
    store.refresh_from_db()
    assert store.status == Store.Status.SUSPENDED

    # A resume re-reads the store before it starts anything: one deleted meanwhile is not started again.
    with capture(execute=True):
        resume = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESUME)
    store_transition(store_id=store.pk, to=Store.Status.DELETING, note="as a teardown that got in first would")
    run_provisioning_worker()
    resume.refresh_from_db()
    assert resume.status == ProvisioningJob.Status.FAILED and "the store became deleting" in resume.error
    assert container_states(store) == stopped


class HeldRedis:
    """A relay on a loopback port to the test Redis. It forwards everything until a client writes `marker`:
    that write is held (never forwarded) and `held` is set. So the web process stops inside RQ's enqueue of
    the restore, after its transaction committed and before anything of the enqueue reached Redis, every time.
    """

    def __init__(self, marker: bytes, upstream: tuple[str, int]):
        self.marker, self.upstream = marker, upstream
        self.held = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, watch: bool) -> None:
        tail = b""
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                break
            if watch and self.marker in tail + data:
                self.held.set()
                return  # the client now waits for an answer that never comes
            tail = data[-len(self.marker) :]
            try:
                target.sendall(data)
            except OSError:
                return
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


@pytest.mark.docker
def test_a_web_process_killed_inside_a_restore_request_leaves_a_restore_that_runs_to_completion(
    committed,  # noqa: F811 - the fixture imported above
    store_images,
    clean_test_stores,
    run_provisioning_worker,
    run_backups_worker,
    settings,
):
    """The worst moment: the RestoreRun is committed and the process dies inside the enqueue. The run is
    recorded, so it must run: the minute's recovery job finds that RQ never got it and enqueues it."""
    import requests
    from django.db import connection
    from django.test import Client

    store = store_create(customer=committed["customer"](), plan=committed["plan"], domain="killed.test")
    server = relay = None
    try:
        store_order_paid(store_id=store.pk)  # autocommit here: enqueued for real
        run_provisioning_worker()
        store.refresh_from_db()
        assert store.status == Store.Status.ACTIVE, store.jobs.last().error
        insert_post(store, "Kept post")
        original_posts = posts(store)
        [backup] = BackupRun.objects.filter(store=store)  # the first backup, queued when the store went live
        run_backups_worker()
        backup.refresh_from_db()
        assert backup.status == RunStatus.SUCCEEDED, backup.error
        sql(store, "DELETE FROM wp_posts WHERE post_title = 'Kept post'")
        damaged_posts = posts(store)

        # The real web app in its own process, on this test database, talking to Redis through the relay.
        redis_url = urlsplit(settings.REDIS_URL)
        relay = HeldRedis(b"rq:job:restore-", (redis_url.hostname, redis_url.port or 6379))
        database = connection.settings_dict
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shophosting.settings.test",
            "DATABASE_URL": f"mysql://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
            "REDIS_URL": f"redis://127.0.0.1:{relay.port}{redis_url.path}",
        }
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
            return False

        wait_for(answers, 60, "the web process to listen")

        browser = Client()
        browser.force_login(store.customer)
        web = requests.Session()
        web.cookies.set(settings.SESSION_COOKIE_NAME, browser.cookies[settings.SESSION_COOKIE_NAME].value)
        url = f"http://127.0.0.1:{port}/stores/{store.pk}/backups/{backup.snapshot_id}/restore/"
        page = web.get(url, params={"scope": "db"}, timeout=60)
        assert page.status_code == 200 and "Restore from" in page.text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        form = {"csrfmiddlewaretoken": token, "scope": "db", "confirm": backup.snapshot_id[:8]}

        def send() -> None:
            with contextlib.suppress(requests.RequestException):  # the process dies under it
                web.post(url, data=form, headers={"Referer": url}, timeout=120)

        post = threading.Thread(target=send, daemon=True)
        post.start()
        assert relay.held.wait(60), "the restore request never reached its enqueue"
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        post.join(timeout=10)

        # The run was recorded (its transaction committed) and RQ never heard of it.
        [run] = RestoreRun.objects.filter(store=store)
        assert run.status == RunStatus.QUEUED
        assert not rq_job_pending(queue="backups", job_id=f"restore-{run.pk}")
        assert posts(store) == damaged_posts
        # Within a minute the recovery job enqueues it again, and it runs to completion.
        assert backup_services.runs_recover(now=timezone.now() + timedelta(minutes=2))["requeued"] == [run.pk]
        run_backups_worker()
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, f"{run.error}\n{run.log}"
        assert posts(store) == original_posts
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        if relay is not None:
            relay.close()
        BackupRun.objects.filter(store=store).delete()  # the committed fixture deletes the store itself
