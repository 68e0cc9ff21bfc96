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
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupRun, RestoreExport, RestoreRun, RunStatus
from backups.services import restore as restore_kind
from backups.services.backup import backup_enqueue
from backups.services.records import BackupConflict
from backups.services.restore import restore_request
from backups.services.restore_export import restore_export_request
from backups.services.verify import backups_verify, verify_enqueue
from provisioning import docker_client, liveness
from provisioning.exceptions import JobConflict
from provisioning.models import JobStep, ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.services import _job_claim, job_enqueue, jobs_reap_stale, jobs_requeue_lost
from provisioning.stacks.base import DB_ROOT_CLIENT_ENV
from shophosting.core.queues import rq_job_pending
from stores.models import Store
from stores.operations import store_operation_active
from stores.services import store_create, store_transition
from tests.conftest import ROOT
from tests.test_backups import back_up, insert_post, job_log, posts, restore, sql
from tests.test_provisioning_workers import (  # noqa: F401 - committed and start_worker are fixtures
    committed,
    kill_with_work_horse,
    start_worker,
    wait_for,
)

Job = ProvisioningJob


def busy(job: ProvisioningJob, title: str) -> str:
    """The pattern of the answer to any operation refused because `job` is queued or running on its store."""
    return rf"This store is busy: {re.escape(title)} \(job #{job.pk}\) is {job.status} since \d\d:\d\d UTC\."


TRY_AGAIN = r" Try again once it has finished\."  # what the refusal under the store's lock adds


def queued_restore(store: Store, scope: str = RestoreRun.Scope.ALL) -> RestoreRun:
    """A restore as restore_request records it once restic has confirmed the snapshot (no repository here): a
    `restore` job with its scope's skipped steps, and its RestoreRun. Nothing is enqueued: no commit."""
    with transaction.atomic():
        job = job_enqueue(store_id=store.pk, kind=restore_kind.KIND, skip=restore_kind.SCOPE_SKIPS[scope])
        return RestoreRun.objects.create(store=store, snapshot_id="a" * 64, scope=scope, job=job)


def claimed_by_a_worker_that_died(job_id: int) -> None:
    """What a worker does first with a job (it moves to running, and its record with it); then the worker is
    gone: nothing holds the job's liveness lock."""
    assert _job_claim(job_id) is not None


@pytest.mark.django_db
def test_a_queued_restore_refuses_every_provisioning_job_with_a_clear_message(
    recorded_active_store, client, staff_user
):
    store = recorded_active_store
    run = queued_restore(store)
    refused = busy(run.job, "restore")

    for kind in ProvisioningJob.Kind.values:
        with pytest.raises(JobConflict, match=refused + TRY_AGAIN):
            job_enqueue(store_id=store.pk, kind=kind)
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE  # a refused teardown changed nothing
    assert list(store.jobs.all()) == [run.job]

    # The customer's restart says why, in words.
    client.force_login(store.customer)
    page = client.post(reverse("stores:restart", args=[store.pk]), follow=True).content.decode()
    assert re.search("The store cannot be restarted now: " + refused, page)
    # Staff: the suspend action and the delete page refuse with the same reason, and nothing is queued.
    client.force_login(staff_user)
    changelist = reverse("admin:stores_store_changelist")
    page = client.post(changelist, {"action": "suspend", "_selected_action": [store.pk]}, follow=True)
    assert re.search(re.escape(f"{store.domain.capitalize()}: ") + refused, page.content.decode())
    delete = reverse("admin:stores_store_delete", args=[store.pk])
    page = client.post(delete, {"confirm": store.domain}, follow=True).content.decode()
    assert re.search(re.escape(f"Not deleted: {store.domain}: ") + refused, page)
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE and list(store.jobs.all()) == [run.job]


@pytest.mark.django_db
def test_a_provisioning_job_refuses_backups_and_a_backup_refuses_jobs(recorded_active_store, client):
    store = recorded_active_store
    job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART)

    with pytest.raises(BackupConflict, match=busy(job, "restart")):
        backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    client.force_login(store.customer)
    page = client.post(reverse("backups:create", args=[store.pk]), follow=True).content.decode()
    assert re.search(busy(job, "restart"), page)
    assert not store.backup_runs.exists()

    ProvisioningJob.objects.filter(pk=job.pk).update(status=ProvisioningJob.Status.SUCCEEDED)
    backup = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    with pytest.raises(JobConflict, match=busy(backup.job, "back up")):
        job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.SUSPEND)


@pytest.mark.django_db
def test_verification_holds_the_store_and_waits_for_other_operations(recorded_active_store):
    store = recorded_active_store
    snapshot = BackupRun.objects.create(store=store, kind="manual", status="succeeded", snapshot_id="b" * 64)
    verify = verify_enqueue(run_id=snapshot.pk).verify_job
    refused = busy(verify, "check a backup restores")
    with pytest.raises(JobConflict, match=refused):
        job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.TEARDOWN)
    with pytest.raises(BackupConflict, match=refused):
        backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE

    # A verification whose worker died is failed by the reaper at once, and the store is free again.
    claimed_by_a_worker_that_died(verify.pk)
    assert jobs_reap_stale() == [verify.pk]
    snapshot.refresh_from_db()
    assert "the worker running the job is gone" in snapshot.verify_error and snapshot.verified_at is None
    assert store_operation_active(store_id=store.pk) is None

    # Verification does not start while a job runs: the snapshot is neither verified nor failed anew.
    BackupRun.objects.filter(pk=snapshot.pk).update(verify_error="")
    job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART)
    with pytest.raises(JobConflict, match=busy(job, "restart")):
        verify_enqueue(run_id=snapshot.pk)
    assert backups_verify(store_id=store.pk) == []
    snapshot.refresh_from_db()
    assert snapshot.verified_at is None and snapshot.verify_error == "" and snapshot.verify_job_id == verify.pk
    assert store_operation_active(store_id=store.pk).startswith(f"This store is busy: restart (job #{job.pk}) is")


@pytest.mark.django_db
def test_jobs_that_lost_their_enqueue_run_and_those_whose_worker_hangs_are_failed_at_their_timeout(
    recorded_active_store,
):
    """In a test no transaction commits, so on_commit never enqueues: exactly the state a web process
    killed between its commit and its enqueue leaves behind. Backups and restores are jobs like the rest."""
    store = recorded_active_store
    later = timezone.now() + timedelta(minutes=2)
    job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART)
    queues = [django_rq.get_queue(name) for name in ("provisioning", "backups")]
    try:
        assert not rq_job_pending(queue="provisioning", job_id=f"provisioning-job-{job.pk}")
        assert jobs_requeue_lost(now=timezone.now()) == []  # within the grace period: its enqueue may be on its way
        assert jobs_requeue_lost(now=later) == [job.pk]
        assert rq_job_pending(queue="provisioning", job_id=f"provisioning-job-{job.pk}")
        assert jobs_requeue_lost(now=later) == []  # enqueued once, not twice
        ProvisioningJob.objects.filter(pk=job.pk).update(status=ProvisioningJob.Status.SUCCEEDED)

        restore = queued_restore(store, RestoreRun.Scope.DATABASE)
        assert jobs_requeue_lost(now=later) == [restore.job_id]
        assert rq_job_pending(queue="backups", job_id=f"provisioning-job-{restore.job_id}")  # the kind's queue
        assert jobs_requeue_lost(now=later) == []

        # A restore whose worker hangs (alive, holding its lock), and the pre-restore backup it left queued,
        # are failed once it ran past its timeout, not before.
        assert _job_claim(restore.job_id) is not None
        pre = BackupRun.objects.create(store=store, kind=BackupRun.Kind.PRE_RESTORE, job_id=restore.job_id)
        RestoreRun.objects.filter(pk=restore.pk).update(pre_restore_backup=pre)
        timeout = ProvisioningJob.objects.get(pk=restore.job_id).timeout_seconds
        with liveness.job_hold(job_id=restore.job_id) as held:
            assert held
            assert jobs_reap_stale(now=timezone.now() + timedelta(seconds=timeout - 60)) == []
            assert store_operation_active(store_id=store.pk) is not None
            assert jobs_reap_stale(now=timezone.now() + timedelta(seconds=timeout + 1)) == [restore.job_id]
        restore.refresh_from_db()
        pre.refresh_from_db()
        assert restore.status == RunStatus.FAILED and "timeout" in restore.error
        assert pre.status == RunStatus.FAILED
        steps = dict(JobStep.objects.filter(job_id=restore.job_id).values_list("name", "status"))
        assert steps == {
            "pre_backup": JobStep.Status.SKIPPED,
            "stop": JobStep.Status.SKIPPED,
            restore_kind.EXPORT_STEP: JobStep.Status.SKIPPED,
            "database": JobStep.Status.SKIPPED,
            "files": JobStep.Status.SKIPPED,  # a database-only restore
            "start": JobStep.Status.SKIPPED,
            "check": JobStep.Status.SKIPPED,
        }
        assert store_operation_active(store_id=store.pk) is None
    finally:
        for queue in queues:
            queue.empty()


@pytest.mark.django_db
def test_a_running_backup_or_restore_is_reaped_as_soon_as_no_worker_holds_it_and_not_before(store_in_status):
    """A backup or restore whose worker died used to hold its store for the restic timeout (over an hour)."""
    backup_store, restore_store = store_in_status("active"), store_in_status("active")
    backup = backup_enqueue(store_id=backup_store.pk, kind=BackupRun.Kind.MANUAL)
    restore = queued_restore(restore_store, RestoreRun.Scope.DATABASE)
    for job_id in (backup.job_id, restore.job_id):
        assert _job_claim(job_id) is not None
    backup.refresh_from_db()
    restore.refresh_from_db()
    assert backup.status == restore.status == RunStatus.RUNNING

    with (
        liveness.job_hold(job_id=backup.job_id) as backup_held,
        liveness.job_hold(job_id=restore.job_id) as restore_held,
    ):
        assert backup_held and restore_held
        assert jobs_reap_stale() == []  # their workers are alive
    assert sorted(jobs_reap_stale()) == sorted([backup.job_id, restore.job_id])
    backup.refresh_from_db()
    restore.refresh_from_db()
    assert backup.status == RunStatus.FAILED and "the worker running the job is gone" in backup.error
    assert restore.status == RunStatus.FAILED and "the worker running the job is gone" in restore.error
    assert store_operation_active(store_id=backup_store.pk) is None
    assert store_operation_active(store_id=restore_store.pk) is None


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
                command=["sh", "-c", f'{DB_ROOT_CLIENT_ENV} mariadb -uroot wordpress -N -B -e "$0"', "SELECT 1"],
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

    # What changed since the backup is read from the stopped database, which is stopped again afterwards.
    with capture(execute=True):
        export = restore_export_request(store_id=store.pk, snapshot_id=snapshot.snapshot_id)
    run_backups_worker()
    export.refresh_from_db()
    assert export.status == RunStatus.SUCCEEDED, f"{export.error}\n{job_log(export.job_id)}"
    assert export.summary == "1 post since this backup"  # the later post (a deleted row comes back anyway)
    assert container_states(store) == stopped

    # The database only: the snapshot's rows are back, the files untouched, and the store still stopped.
    run = restore(store, snapshot.snapshot_id, RestoreRun.Scope.DATABASE, run_backups_worker, capture)
    assert "stays stopped" in job_log(run.job_id) and run.pre_restore_backup.status == RunStatus.SUCCEEDED
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
        relay = HeldRedis(b"rq:job:provisioning-job-", (redis_url.hostname, redis_url.port or 6379))
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
        # The summary read before a database restore, as its job leaves it; the restore exports into it again.
        export = RestoreExport.objects.create(
            store=store, backup_run=backup, snapshot_id=backup.snapshot_id, status=RunStatus.SUCCEEDED
        )
        form = {
            "csrfmiddlewaretoken": token,
            "scope": "db",
            "confirm": backup.snapshot_id[:8],
            "export": export.pk,
        }

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
        assert run.job.status == ProvisioningJob.Status.QUEUED
        assert not rq_job_pending(queue="backups", job_id=f"provisioning-job-{run.job_id}")
        assert posts(store) == damaged_posts
        # Within a minute the recovery job enqueues it again, and it runs to completion.
        assert jobs_requeue_lost(now=timezone.now() + timedelta(minutes=2)) == [run.job_id]
        run_backups_worker()
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, f"{run.error}\n{job_log(run.job_id)}"
        assert posts(store) == original_posts
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        if relay is not None:
            relay.close()
        BackupRun.objects.filter(store=store).delete()  # the committed fixture deletes the store itself


# --- One engine, on a real store: overlapping requests and a worker that dies ------------------------------


def live_store_with_a_backup(
    committed,  # noqa: F811
    run_provisioning_worker,
    run_backups_worker,
    domain: str,
    **fields,
):
    """A live store built for real (committed, so workers in other threads and processes see it) and its first
    backup, queued when it went live, taken by the backups worker. `fields`: more for store_create."""
    store = store_create(customer=committed["customer"](), plan=committed["plan"], domain=domain, **fields)
    store_order_paid(store_id=store.pk)  # autocommit here: enqueued for real
    run_provisioning_worker()
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE, store.jobs.last().error
    [backup] = BackupRun.objects.filter(store=store)
    run_backups_worker()
    backup.refresh_from_db()
    assert backup.status == RunStatus.SUCCEEDED, backup.error
    return store, backup


def lock_waits() -> int:
    """Transactions of this test database waiting for a row lock (other databases share the server)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX trx JOIN information_schema.PROCESSLIST process"
            " ON process.ID = trx.trx_mysql_thread_id WHERE trx.trx_state = 'LOCK WAIT' AND process.DB = DATABASE()"
        )
        return cursor.fetchone()[0]


def race(store: Store, operations: dict) -> dict:
    """Start each operation (name -> a call that returns its job) in a thread of its own, with its own
    database connection, so that all of them wait on the store's row lock at once; then let them go.
    Returns name -> the job it was given, or the StoreBusy it got."""
    results: dict = {}

    def attempt(name, operation):
        try:
            results[name] = operation()
        except (JobConflict, BackupConflict) as exc:
            results[name] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=item) for item in operations.items()]
    with transaction.atomic():
        Store.objects.select_for_update().get(pk=store.pk)  # held while both requests arrive
        for thread in threads:
            thread.start()
        wait_for(lambda: lock_waits() == len(threads), 60, "every request to wait on the store's row lock")
    for thread in threads:
        thread.join(timeout=60)
    assert set(results) == set(operations)
    return results


@pytest.mark.docker
def test_two_different_operations_on_one_store_never_overlap(
    committed,  # noqa: F811 - the fixture imported above
    store_images,
    clean_test_stores,
    run_provisioning_worker,
    run_backups_worker,
):
    """Two different operations asked for at the same moment (a customer's restore and a restart; then a
    backup and a staff suspension), from two threads against the same live store: exactly one is admitted,
    the other is told, in words, which operation holds the store; the admitted one runs to success."""
    store, backup = live_store_with_a_backup(committed, run_provisioning_worker, run_backups_worker, "overlap.test")
    try:
        rounds = [
            {
                "restore": lambda: restore_request(store_id=store.pk, snapshot_id=backup.snapshot_id, scope="db").job,
                "restart": lambda: job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART),
            },
            {
                "back up": lambda: backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL).job,
                "suspend": lambda: job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.SUSPEND),
            },
        ]
        for operations in rounds:
            before = set(store.jobs.values_list("pk", flat=True))
            results = race(store, operations)

            admitted = {name: job for name, job in results.items() if isinstance(job, ProvisioningJob)}
            refused = {name: exc for name, exc in results.items() if not isinstance(exc, ProvisioningJob)}
            assert len(admitted) == 1 and len(refused) == 1, results
            [(title, job)] = admitted.items()
            [answer] = refused.values()
            assert re.fullmatch(busy(job, title) + TRY_AGAIN, str(answer)), str(answer)
            assert set(store.jobs.values_list("pk", flat=True)) - before == {job.pk}  # no job for the refused one

            run_provisioning_worker()
            run_backups_worker()
            job.refresh_from_db()
            assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
            assert store_operation_active(store_id=store.pk) is None
    finally:
        BackupRun.objects.filter(store=store).delete()  # the committed fixture deletes the store itself


@contextlib.contextmanager
def table_locked(store: Store, table: str):
    """`table` of the store's database write-locked by another session while the block runs: a dump waits
    on it, inside the backup's first step, however fast the machine is."""
    container = docker_client.client().containers.get(f"{store.slug}-db")
    statement = f"LOCK TABLES {table} WRITE; SELECT SLEEP(600)"
    container.exec_run(["sh", "-c", f'{DB_ROOT_CLIENT_ENV} mariadb -uroot wordpress -e "$0"', statement], detach=True)

    def holder() -> str:
        return sql(store, "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(%'")

    wait_for(lambda: holder() != "", 30, "the table lock to be held")
    try:
        yield
    finally:
        sql(store, f"KILL {int(holder())}")


@pytest.mark.docker
def test_the_reaper_fails_a_backup_whose_worker_died(
    committed,  # noqa: F811 - the fixture imported above
    store_images,
    clean_test_stores,
    start_worker,  # noqa: F811 - the fixture imported above
    run_provisioning_worker,
    run_backups_worker,
):
    """A backup running in a real `rqworker backups` process is killed mid-step: the reaper fails it at once
    (the worker's liveness lock went with it), not after the job's timeout of over an hour; its BackupRun is
    failed, the steps after the running one are skipped, and the store takes a new backup."""
    store, _ = live_store_with_a_backup(committed, run_provisioning_worker, run_backups_worker, "reaped.test")
    try:
        with table_locked(store, "wp_options"):
            with transaction.atomic():  # committed: on commit, the backup is enqueued for real
                backup = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
            worker = start_worker("backups")
            wait_for(
                lambda: JobStep.objects.filter(
                    job_id=backup.job_id, name="database", status=JobStep.Status.RUNNING
                ).exists(),
                60,
                "the backup to reach its database step",
            )
            time.sleep(1)  # the dump is under way, waiting on the table
            kill_with_work_horse(worker)
            killed = time.monotonic()
            backup.refresh_from_db()
            assert backup.status == RunStatus.RUNNING  # nobody is left to say otherwise

            reaped: list[int] = []
            wait_for(lambda: reaped.extend(jobs_reap_stale()) or reaped, 30, "the reaper to fail the backup")
            elapsed = time.monotonic() - killed

        job = ProvisioningJob.objects.get(pk=backup.job_id)
        assert reaped == [job.pk] and elapsed < 30
        assert job.timeout_seconds > 3600  # what a dead worker used to cost
        assert job.status == ProvisioningJob.Status.FAILED and job.reaped_at is not None
        assert "the worker running the job is gone" in job.error
        steps = dict(job.steps.values_list("name", "status"))
        assert steps == {
            "database": JobStep.Status.FAILED,
            "files": JobStep.Status.SKIPPED,
            "snapshot": JobStep.Status.SKIPPED,
        }
        backup.refresh_from_db()
        assert backup.status == RunStatus.FAILED and "the worker running the job is gone" in backup.error
        assert backup.snapshot_id == ""

        assert store_operation_active(store_id=store.pk) is None
        with transaction.atomic():
            again = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
        run_backups_worker()
        again.refresh_from_db()
        assert again.status == RunStatus.SUCCEEDED, again.error
    finally:
        BackupRun.objects.filter(store=store).delete()  # the committed fixture deletes the store itself
