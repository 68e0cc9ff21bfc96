"""The customer's backup pages without Docker: rate limits, ownership of every URL, and a restore followed on
the store's job page."""

import datetime as dt

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupRun, RestoreExport, RestoreRun, RunStatus
from backups.services import restore
from provisioning.exceptions import DockerUnavailable
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue, job_execute
from stores.services import store_create
from tests.plugins.factories import UNREACHABLE_ENGINE
from tests.ratelimit_windows import fresh_window_start

pytestmark = pytest.mark.django_db


def test_creating_backups_is_limited_to_3_an_hour_with_a_429_page(client, recorded_active_store):
    client.force_login(recorded_active_store.customer)
    url = reverse("backups:create", args=[recorded_active_store.pk])

    with time_machine.travel(fresh_window_start("3/h"), tick=False):  # no hour boundary between them
        responses = [client.post(url) for _ in range(4)]

    assert [r.status_code for r in responses[:3]] == [302, 302, 302]
    assert responses[3].status_code == 429 and b"Too many" in responses[3].content
    assert recorded_active_store.backup_runs.count() == 1  # the 2nd and 3rd were told a backup is already queued


def queued_restore(store, scope=RestoreRun.Scope.DATABASE) -> RestoreRun:
    """A restore as restore_request records it once restic has confirmed the snapshot (there is no repository
    in these tests): a `restore` job with the scope's skipped steps, and its RestoreRun."""
    with transaction.atomic():
        job = job_enqueue(store_id=store.pk, kind=restore.KIND, skip=restore.SCOPE_SKIPS[scope])
        return RestoreRun.objects.create(store=store, snapshot_id="a" * 64, scope=scope, job=job)


def test_a_restore_is_followed_on_the_stores_job_page_by_its_owner_only(client, recorded_active_store, user_factory):
    run = queued_restore(recorded_active_store)
    client.force_login(recorded_active_store.customer)

    progress = client.get(reverse("stores:job_progress", args=[recorded_active_store.pk, run.job_id])).json()

    assert progress["progress"]["job"] == {"id": run.job_id, "kind": "Restore", "status": "queued", "active": True}
    assert [(s["title"], s["status"]) for s in progress["progress"]["steps"]] == [
        ("Back up the store as it is now", "pending"),
        ("Stop the store", "pending"),
        ("Keep what changed since the backup", "pending"),
        ("Restore the database", "pending"),
        ("Restore the files", "skipped"),
        ("Start the store", "pending"),
        ("Check that the store answers", "pending"),
    ]
    page = client.get(reverse("stores:job", args=[recorded_active_store.pk, run.job_id])).content.decode()
    assert "Restore of" in page and "Back up the store as it is now" in page
    # The address restores were followed at before they were jobs leads to the job page.
    old = client.get(reverse("backups:restore_progress", args=[recorded_active_store.pk, run.pk]))
    assert old.status_code == 302 and old["Location"] == reverse(
        "stores:job", args=[recorded_active_store.pk, run.job_id]
    )

    stranger = user_factory(email="stranger@example.com")
    client.force_login(stranger)
    urls = [
        reverse("backups:list", args=[recorded_active_store.pk]),
        reverse("backups:restore_progress", args=[recorded_active_store.pk, run.pk]),
        reverse("stores:job", args=[recorded_active_store.pk, run.job_id]),
        reverse("stores:job_progress", args=[recorded_active_store.pk, run.job_id]),
        reverse("backups:restore", args=[recorded_active_store.pk, "a" * 64]),
    ]
    assert [client.get(url).status_code for url in urls] == [404, 404, 404, 404, 404]
    assert client.post(reverse("backups:create", args=[recorded_active_store.pk])).status_code == 404
    assert not BackupRun.objects.exists()


def test_a_failed_restore_tells_its_owner_plain_words_never_the_engines(
    client, recorded_active_store, place_on_unreachable_engine
):
    """The restore really runs and fails at its first step: the store's engine does not answer. Staff get the
    engine's words; the owner gets step titles and plain words, and the steps that never ran are skipped."""
    place_on_unreachable_engine(recorded_active_store)
    run = queued_restore(recorded_active_store)

    with pytest.raises(DockerUnavailable):
        job_execute(job_id=run.job_id)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and UNREACHABLE_ENGINE in run.error
    assert UNREACHABLE_ENGINE in ProvisioningJob.objects.get(pk=run.job_id).error  # for staff
    client.force_login(recorded_active_store.customer)
    progress = client.get(reverse("stores:job_progress", args=[recorded_active_store.pk, run.job_id]))
    page = client.get(reverse("stores:job", args=[recorded_active_store.pk, run.job_id]))
    for body in (progress.content.decode(), page.content.decode()):
        leaks = [word for word in ("127.0.0.1:9", "tcp://", "DockerUnavailable", "unreachable") if word in body]
        assert leaks == []
    steps = progress.json()["progress"]["steps"]
    assert [(s["title"], s["status"]) for s in steps] == [
        ("Back up the store as it is now", "failed"),
        ("Stop the store", "skipped"),
        ("Keep what changed since the backup", "skipped"),
        ("Restore the database", "skipped"),
        ("Restore the files", "skipped"),
        ("Start the store", "skipped"),
        ("Check that the store answers", "skipped"),
    ]
    assert [(line["step"], line["message"]) for line in progress.json()["progress"]["log"]] == [
        ("Back up the store as it is now", "stopped here; our team has been told and will look into it")
    ]


def test_staff_store_list_shows_backup_age_size_and_failures(
    client, staff_user, recorded_active_store, user_factory, woo_plan
):
    client.force_login(staff_user)
    url = reverse("admin:stores_store_changelist")
    assert "never" in client.get(url).content.decode()

    run = BackupRun.objects.create(
        store=recorded_active_store,
        kind="scheduled",
        status=RunStatus.SUCCEEDED,
        snapshot_id="b" * 64,
        size_bytes=5 * 1024**2,
    )
    BackupRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - dt.timedelta(hours=2))
    page = client.get(url).content.decode()
    assert "2\xa0hours ago · 5.0\xa0MB" in page

    BackupRun.objects.create(store=recorded_active_store, kind="scheduled", status=RunStatus.FAILED, error="disk full")
    assert "last run failed" in client.get(url).content.decode()

    for n in range(5):  # more stores, same number of queries
        store_create(customer=user_factory(), plan=woo_plan, domain=f"more{n}.test")
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(5, 15):
        store_create(customer=user_factory(), plan=woo_plan, domain=f"more{n}.test")
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many) == len(few)


def test_due_backups_are_queued_by_interval_and_commands_refuse_bad_input(
    recorded_active_store, user_factory, woo_plan
):
    import io

    from django.core.management import CommandError, call_command

    from backups.services.retention import backups_enqueue_due

    assert backups_enqueue_due(dry_run=True) == [recorded_active_store.pk]  # never backed up: due
    assert backups_enqueue_due() == [recorded_active_store.pk]
    assert backups_enqueue_due() == []  # queued just now, and a second run would overlap anyway
    run = recorded_active_store.backup_runs.get()
    BackupRun.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED, created_at=timezone.now() - dt.timedelta(hours=7)
    )
    out = io.StringIO()
    call_command("backups_enqueue_due", "--dry-run", stdout=out)
    assert f"1 store(s) due: {recorded_active_store.pk}" in out.getvalue()
    assert recorded_active_store.backup_runs.count() == 1  # --dry-run queued nothing

    never_built = store_create(customer=user_factory(), plan=woo_plan, domain="unbuilt.test")
    with pytest.raises(CommandError, match="was never built"):
        call_command("backup_store", never_built.pk)
    with pytest.raises(CommandError, match="there is no store"):
        call_command("backup_store", 999_999)
    with pytest.raises(CommandError, match="refused: not a snapshot id"):
        call_command("restore_store", recorded_active_store.pk, "../../etc", "all")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("restore_store", recorded_active_store.pk, "a" * 64, "everything")


def test_the_backups_pages_run_no_restic_and_read_snapshots_from_the_database(
    client, recorded_active_store, settings, tmp_path
):
    """restic is replaced by a wrapper that logs every start and then runs the real restic, and the repository
    is moved out of reach: the pages must render the recorded snapshots without starting restic once."""
    import shutil

    calls = tmp_path / "restic-calls.log"
    wrapper = tmp_path / "restic"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {shutil.which("restic")} "$@"\n')
    wrapper.chmod(0o755)
    settings.RESTIC_BINARY = str(wrapper)
    settings.RESTIC_REPOSITORY = str(tmp_path / "moved-away")
    kept = BackupRun.objects.create(
        store=recorded_active_store,
        kind="manual",
        status=RunStatus.SUCCEEDED,
        snapshot_id="c" * 64,
        finished_at=timezone.now(),
    )
    BackupRun.objects.create(
        store=recorded_active_store,
        kind="scheduled",
        status=RunStatus.SUCCEEDED,
        snapshot_id="d" * 64,
        forgotten_at=timezone.now(),  # the reconcile job found it gone
    )
    client.force_login(recorded_active_store.customer)

    listing = client.get(reverse("backups:list", args=[recorded_active_store.pk]))
    confirm = client.get(reverse("backups:restore", args=[recorded_active_store.pk, kept.snapshot_id]))
    forgotten = client.get(reverse("backups:restore", args=[recorded_active_store.pk, "d" * 64]))

    assert listing.status_code == 200 and kept.snapshot_id in listing.content.decode()
    assert "d" * 64 not in listing.content.decode()
    assert confirm.status_code == 200 and f"<code>{kept.snapshot_id[:8]}</code>" in confirm.content.decode()
    assert forgotten.status_code == 404
    assert not calls.exists(), f"restic ran during a page view: {calls.read_text()}"


def test_a_restore_of_a_snapshot_gone_from_the_repository_or_an_unreachable_repository_is_refused_in_words(
    client, recorded_active_store, restic_repository, settings, tmp_path
):
    """The page reads the database, so a snapshot forgotten since the last reconcile, or a repository that
    does not answer, is only found out by the restore request: a clear message, no restore, never a 500."""
    run = BackupRun.objects.create(
        store=recorded_active_store,
        kind="manual",
        status=RunStatus.SUCCEEDED,
        snapshot_id="f" * 64,
        finished_at=timezone.now(),
    )
    # The summary of what changed since the backup, as its job leaves it (read before a database restore).
    export = RestoreExport.objects.create(
        store=recorded_active_store, backup_run=run, snapshot_id=run.snapshot_id, status=RunStatus.SUCCEEDED
    )
    client.force_login(recorded_active_store.customer)
    url = reverse("backups:restore", args=[recorded_active_store.pk, run.snapshot_id])
    form = {"scope": "db", "confirm": run.snapshot_id[:8], "export": export.pk}

    gone = client.post(url, form, follow=True)  # a real, empty repository: the snapshot is not in it
    settings.RESTIC_REPOSITORY = str(tmp_path / "unreachable")
    unreachable = client.post(url, form, follow=True)

    assert gone.status_code == 200 and "no longer in the backup storage" in gone.content.decode()
    assert unreachable.status_code == 200 and "The backup storage did not answer" in unreachable.content.decode()
    assert "unreachable" not in unreachable.content.decode()  # restic's own words are for staff logs
    assert not RestoreRun.objects.filter(store=recorded_active_store).exists()


def test_backup_page_views_are_rate_limited_with_a_429(client, recorded_active_store):
    run = BackupRun.objects.create(
        store=recorded_active_store,
        kind="manual",
        status=RunStatus.SUCCEEDED,
        snapshot_id="e" * 64,
        finished_at=timezone.now(),
    )
    client.force_login(recorded_active_store.customer)
    listing = reverse("backups:list", args=[recorded_active_store.pk])

    # Inside one minute window: 31 requests straddling a boundary would start a new count half way.
    with time_machine.travel(fresh_window_start("30/m"), tick=True):
        statuses = [client.get(listing).status_code for _ in range(31)]
        # The restore confirmation counts against the same budget.
        blocked = client.get(reverse("backups:restore", args=[recorded_active_store.pk, run.snapshot_id]))

    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0 and b"Too many" in blocked.content
