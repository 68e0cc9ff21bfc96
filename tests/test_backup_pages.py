"""The customer's backup pages without Docker: rate limits, ownership of every URL, and restore progress."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupRun, RestoreRun, RunStatus
from stores.services import store_create

pytestmark = pytest.mark.django_db


def test_creating_backups_is_limited_to_3_an_hour_with_a_429_page(client, recorded_active_store):
    client.force_login(recorded_active_store.customer)
    url = reverse("backups:create", args=[recorded_active_store.pk])

    responses = [client.post(url) for _ in range(4)]

    assert [r.status_code for r in responses[:3]] == [302, 302, 302]
    assert responses[3].status_code == 429 and b"Too many" in responses[3].content
    assert recorded_active_store.backup_runs.count() == 1  # the 2nd and 3rd were told a backup is already queued


def test_restore_progress_is_shown_to_its_owner_only(client, recorded_active_store, user_factory):
    run = RestoreRun.objects.create(
        store=recorded_active_store,
        snapshot_id="a" * 64,
        scope=RestoreRun.Scope.DATABASE,
        status=RunStatus.RUNNING,
        step="database",
        log="10:00:00 [pre_backup] snapshot abcd1234 taken\n",
    )
    client.force_login(recorded_active_store.customer)

    progress = client.get(reverse("backups:restore_progress_json", args=[recorded_active_store.pk, run.pk])).json()

    assert progress["active"] is True
    assert [(s["name"], s["status"]) for s in progress["steps"]] == [
        ("pre_backup", "succeeded"),
        ("stop", "succeeded"),
        ("database", "running"),
        ("start", "pending"),
        ("check", "pending"),
    ]
    assert progress["log"] == [
        "Back up the store as it is now: done",
        "Stop the store: done",
        "Restore the database: in progress",
    ]
    page = client.get(reverse("backups:restore_progress", args=[recorded_active_store.pk, run.pk])).content.decode()
    assert "Restore the database" in page and "Back up the store as it is now: done" in page

    stranger = user_factory(email="stranger@example.com")
    client.force_login(stranger)
    urls = [
        reverse("backups:list", args=[recorded_active_store.pk]),
        reverse("backups:restore_progress", args=[recorded_active_store.pk, run.pk]),
        reverse("backups:restore_progress_json", args=[recorded_active_store.pk, run.pk]),
        reverse("backups:restore", args=[recorded_active_store.pk, "a" * 64]),
    ]
    assert [client.get(url).status_code for url in urls] == [404, 404, 404, 404]
    assert client.post(reverse("backups:create", args=[recorded_active_store.pk])).status_code == 404
    assert not BackupRun.objects.exists()


def test_a_failed_restore_tells_its_owner_plain_words_never_the_engines(client, recorded_active_store):
    pre = BackupRun.objects.create(
        store=recorded_active_store,
        kind=BackupRun.Kind.PRE_RESTORE,
        status=RunStatus.SUCCEEDED,
        snapshot_id="beef1234" + "0" * 56,
    )
    engine_words = (
        "ProvisioningError: the dump does not import: ERROR 2002 (HY000): Can't connect to server on "
        "'shtest-store-7-db' (115) via tcp://10.0.3.7:2376"
    )
    run = RestoreRun.objects.create(
        store=recorded_active_store,
        snapshot_id="a" * 64,
        scope=RestoreRun.Scope.DATABASE,
        status=RunStatus.FAILED,
        step="database",
        pre_restore_backup=pre,
        log=f"10:00:00 [pre_backup] snapshot beef1234 taken\n10:00:09 [database] failed: {engine_words}\n",
        error=f"database: {engine_words}",
    )
    client.force_login(recorded_active_store.customer)

    progress = client.get(reverse("backups:restore_progress_json", args=[recorded_active_store.pk, run.pk]))
    page = client.get(reverse("backups:restore_progress", args=[recorded_active_store.pk, run.pk]))

    for body in (progress.content.decode(), page.content.decode()):
        leaks = [
            word for word in ("shtest-store", "10.0.3.7", "tcp://", "ERROR 2002", "ProvisioningError") if word in body
        ]
        assert leaks == []
    assert progress.json()["error"] == (
        "The restore stopped at “Restore the database”. Our team has been told and will look into it."
    )
    assert progress.json()["log"] == [
        "Back up the store as it is now: done",
        "snapshot beef1234 keeps the store as it was before this restore",
        "Stop the store: done",
        "Restore the database: stopped here",
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

    from backups.services import backups_enqueue_due

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
    client.force_login(recorded_active_store.customer)
    url = reverse("backups:restore", args=[recorded_active_store.pk, run.snapshot_id])
    form = {"scope": "db", "confirm": run.snapshot_id[:8]}

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

    statuses = [client.get(listing).status_code for _ in range(31)]

    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429
    # The restore confirmation counts against the same budget.
    blocked = client.get(reverse("backups:restore", args=[recorded_active_store.pk, run.snapshot_id]))
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0 and b"Too many" in blocked.content
