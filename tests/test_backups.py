"""Backups and restores with a real restic repository and real store containers: the round trip loses
nothing, retention keeps by time, runs never overlap, and foreign or malformed snapshot ids are refused."""

import datetime as dt
import re
import shutil

import pytest
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from backups import restic
from backups.models import BackupRun, RestoreRun, RunStatus
from backups.services.backup import backup_enqueue
from backups.services.records import BackupConflict, SnapshotNotFound, store_tags
from backups.services.restore import restore_request
from backups.services.retention import backups_prune
from backups.services.system import system_backup_enqueue
from backups.services.verify import _row_counts, backups_verify, dump_row_counts, verify_enqueue
from provisioning import docker_client
from provisioning.models import JobLogLine, JobStep, ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.stacks.base import DB_ROOT_CLIENT_ENV
from stores.models import Store
from stores.services import store_create

pytestmark = [pytest.mark.django_db, pytest.mark.docker]
WP_CONTENT = "/var/www/html/wp-content"


@pytest.fixture
def live_store(
    user_factory, woo_plan, store_images, clean_test_stores, django_capture_on_commit_callbacks, run_provisioning_worker
):
    customer = user_factory(email="backup@example.com")
    store = store_create(customer=customer, plan=woo_plan, domain="backup1.test", site_title="Backed Up")
    with django_capture_on_commit_callbacks(execute=True):
        store_order_paid(store_id=store.pk)
    run_provisioning_worker()
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE, store.jobs.last().error
    return store


def sql(store: Store, statement: str) -> str:
    code, output = docker_client.container_exec(
        name=f"{store.slug}-db",
        command=["sh", "-c", f'{DB_ROOT_CLIENT_ENV} mariadb -uroot wordpress -N -B -e "$0"', statement],
    )
    assert code == 0, output
    return output.strip()


def web(store: Store, script: str) -> str:
    code, output = docker_client.container_exec(name=f"{store.slug}-web", command=["sh", "-c", script])
    assert code == 0, output
    return output.strip()


def posts(store: Store) -> list[str]:
    return sql(store, "SELECT post_title FROM wp_posts WHERE post_status='publish' ORDER BY ID").splitlines()


def file_hashes(store: Store) -> dict[str, str]:
    listing = web(store, f"cd {WP_CONTENT} && find . -type f -print0 | sort -z | xargs -0 sha256sum")
    return {path: digest for digest, path in (line.split(None, 1) for line in listing.splitlines())}


def insert_post(store: Store, title: str, post_type: str = "post") -> None:
    # Titles are the test's own constants, in a throwaway store database.
    columns = "post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt, post_status, post_name,"
    columns += " to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, post_type"
    slug = title.lower().replace(" ", "-")
    values = f"1, NOW(), NOW(), 'Body of {title}', '{title}', '', 'publish', '{slug}', '', '', NOW(), NOW(), ''"
    sql(store, f"INSERT INTO wp_posts ({columns}) VALUES ({values}, '{post_type}')")  # noqa: S608


def job_log(job_id: int) -> str:
    """Every line the job's steps logged, in order: what the customer reads on the job page."""
    return "\n".join(JobLogLine.objects.filter(step__job_id=job_id).values_list("message", flat=True))


def back_up(store, kind, run_backups_worker, capture) -> BackupRun:
    with capture(execute=True):
        run = backup_enqueue(store_id=store.pk, kind=kind)
    run_backups_worker()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def restore(store, snapshot_id, scope, run_backups_worker, capture) -> RestoreRun:
    with capture(execute=True):
        run = restore_request(store_id=store.pk, snapshot_id=snapshot_id, scope=scope)
    run_backups_worker()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, f"{run.error}\n{job_log(run.job_id)}"
    return run


def test_round_trip_restores_database_files_or_both_and_loses_nothing(
    live_store, run_backups_worker, django_capture_on_commit_callbacks
):
    store = live_store
    capture = django_capture_on_commit_callbacks
    insert_post(store, "Backup post")
    insert_post(store, "Backup page", post_type="page")
    web(
        store,
        f"mkdir -p {WP_CONTENT}/uploads/2026/11"
        f" && head -c 300000 /dev/urandom > {WP_CONTENT}/uploads/2026/11/photo.jpg",
    )
    web(store, f"chown -R www-data:www-data {WP_CONTENT}/uploads")  # as if WordPress had stored the upload
    original_posts, original_files = posts(store), file_hashes(store)
    assert "Backup post" in original_posts and "./uploads/2026/11/photo.jpg" in original_files

    snapshot = back_up(store, BackupRun.Kind.MANUAL, run_backups_worker, capture)

    tags = restic.snapshots(tags=[f"store-{store.pk}"])[-1]["tags"]
    assert set(tags) == {f"store-{store.pk}", f"customer-{store.customer_id}", "manual"}
    assert snapshot.database_bytes > 10_000 and snapshot.size_bytes > 300_000

    def damage():
        sql(store, "DELETE FROM wp_posts WHERE post_title IN ('Backup post', 'Backup page')")
        insert_post(store, "Written after the backup")
        web(store, f"rm {WP_CONTENT}/uploads/2026/11/photo.jpg && echo new > {WP_CONTENT}/uploads/after.txt")

    damage()
    damaged_files = file_hashes(store)

    run = restore(store, snapshot.snapshot_id, RestoreRun.Scope.DATABASE, run_backups_worker, capture)
    assert posts(store) == original_posts  # every row back, the later post gone
    assert file_hashes(store) == damaged_files  # files left as they were
    assert run.pre_restore_backup.status == RunStatus.SUCCEEDED
    assert "web answers HTTP" in job_log(run.job_id)

    damage_db_only = "DELETE FROM wp_posts WHERE post_title = 'Backup post'"
    sql(store, damage_db_only)
    damaged_posts = posts(store)
    restore(store, snapshot.snapshot_id, RestoreRun.Scope.FILES, run_backups_worker, capture)
    assert file_hashes(store) == original_files  # the upload is back, the later file gone, nothing else changed
    assert posts(store) == damaged_posts  # the database left as it was

    damage()
    restore(store, snapshot.snapshot_id, RestoreRun.Scope.ALL, run_backups_worker, capture)
    assert posts(store) == original_posts
    assert file_hashes(store) == original_files
    assert web(store, f"stat -c %U:%G {WP_CONTENT}/uploads/2026/11/photo.jpg") == "www-data:www-data"  # ownership kept
    # Every restore took a pre-restore backup first.
    assert store.backup_runs.filter(kind=BackupRun.Kind.PRE_RESTORE, status=RunStatus.SUCCEEDED).count() == 3


def test_two_backups_of_one_store_give_one_run_and_a_clear_already_running(
    live_store, client, run_backups_worker, django_capture_on_commit_callbacks
):
    client.force_login(live_store.customer)
    url = reverse("backups:create", args=[live_store.pk])
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(url, follow=True)
        second = client.post(url, follow=True)

    [run] = live_store.backup_runs.all()
    assert "Backup started" in first.content.decode()
    already = f"This store is busy: back up (job #{run.job_id}) is queued since "
    assert already in second.content.decode()
    with pytest.raises(BackupConflict, match=re.escape(already) + r"\d\d:\d\d UTC\. Try again once it has finished"):
        backup_enqueue(store_id=live_store.pk, kind=BackupRun.Kind.SCHEDULED)
    kinds = list(live_store.jobs.order_by("pk").values_list("kind", flat=True))
    assert kinds == ["provision", "backup"]  # no second job either
    run_backups_worker()
    assert live_store.backup_runs.count() == 1
    assert live_store.backup_runs.get().status == RunStatus.SUCCEEDED
    page = client.get(reverse("backups:list", args=[live_store.pk])).content.decode()
    assert live_store.backup_runs.get().snapshot_id in page


def test_foreign_forged_and_malformed_snapshot_ids_are_refused(
    live_store, client, user_factory, woo_plan, run_backups_worker, django_capture_on_commit_callbacks
):
    mine = back_up(live_store, BackupRun.Kind.MANUAL, run_backups_worker, django_capture_on_commit_callbacks)
    # Another store's snapshot, in the same repository (a small one, made directly).
    other = store_create(customer=user_factory(email="other@example.com"), plan=woo_plan, domain="other.test")
    staging = settings.BASE_DIR / "var" / "test" / "foreign-snapshot"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "db.sql").write_text("-- not yours\n")
    foreign = restic.backup(["db.sql"], cwd=staging, tags=[f"store-{other.pk}", "manual"])
    shutil.rmtree(staging)
    BackupRun.objects.create(store=other, kind="manual", status="succeeded", snapshot_id=foreign.snapshot_id)

    for snapshot_id in (foreign.snapshot_id, "0" * 64, "zzzz;rm -rf /", "abc", mine.snapshot_id + "00"):
        with pytest.raises(SnapshotNotFound):
            restore_request(store_id=live_store.pk, snapshot_id=snapshot_id, scope="all")

    client.force_login(live_store.customer)
    for snapshot_id in (foreign.snapshot_id, "0" * 64, "zzzz%3Brm", "abc"):
        cache.delete_pattern("*")  # restore attempts count against the backup rate limit; here each must be seen
        url = f"/stores/{live_store.pk}/backups/{snapshot_id}/restore/"
        assert client.get(url).status_code == 404
        assert client.post(url, {"scope": "all", "confirm": snapshot_id[:8]}).status_code == 404
    # Another customer's store, even with its own snapshot, is a 404 too.
    assert client.get(f"/stores/{other.pk}/backups/").status_code == 404
    assert client.get(f"/stores/{other.pk}/backups/{foreign.snapshot_id}/restore/").status_code == 404
    assert not RestoreRun.objects.exists()
    # The store's own snapshot shows the confirmation with its date.
    page = client.get(f"/stores/{live_store.pk}/backups/{mine.snapshot_id}/restore/?scope=db").content.decode()
    assert f"Restore from {timezone.localtime(mine.finished_at):%-d %B %Y}" in page


def test_retention_keeps_by_time_not_by_count(user_factory, woo_plan, restic_repository):
    """Snapshots made at past times with restic's --time: older than the plan's retention go, however few."""
    store = store_create(customer=user_factory(), plan=woo_plan, domain="retention.test")
    woo_plan.daily_backups = False  # 14 days
    woo_plan.save()
    staging = settings.BASE_DIR / "var" / "test" / "retention"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "db.sql").write_text("-- data\n")
    now = timezone.now()
    made = {}
    for days_ago in (40, 20, 13, 1):
        summary = restic.backup(
            ["db.sql"], cwd=staging, tags=[f"store-{store.pk}", "scheduled"], time=now - dt.timedelta(days=days_ago)
        )
        made[days_ago] = summary.snapshot_id
        BackupRun.objects.create(store=store, kind="scheduled", status="succeeded", snapshot_id=summary.snapshot_id)
    shutil.rmtree(staging)

    forgotten = backups_prune()[f"store-{store.pk}"]

    assert set(forgotten) == {made[40], made[20]}
    remaining = {s["id"] for s in restic.snapshots(tags=[f"store-{store.pk}"])}
    assert remaining == {made[13], made[1]}
    assert set(
        BackupRun.objects.filter(store=store, forgotten_at__isnull=False).values_list("snapshot_id", flat=True)
    ) == {
        made[40],
        made[20],
    }


def verify(run: BackupRun, run_backups_worker, capture) -> BackupRun:
    """The verify job of `run`, queued and run by the backups worker as in production."""
    with capture(execute=True):
        verify_enqueue(run_id=run.pk)
    run_backups_worker()
    return BackupRun.objects.get(pk=run.pk)


def test_verify_marks_a_good_snapshot_and_fails_one_whose_dump_was_corrupted(
    live_store, client, run_backups_worker, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    good = back_up(live_store, BackupRun.Kind.MANUAL, run_backups_worker, capture)

    checked = verify(good, run_backups_worker, capture)

    assert checked.verify_job.status == ProvisioningJob.Status.SUCCEEDED, checked.verify_job.error
    assert checked.verify_error == "" and checked.verified_at is not None
    client.force_login(live_store.customer)
    assert "Verified" in client.get(reverse("backups:list", args=[live_store.pk])).content.decode()
    # The throwaway containers, network and volumes are gone.
    assert docker_client.labelled_objects(label=f"shophosting.verify={good.pk}") == {
        "containers": [],
        "networks": [],
        "volumes": [],
    }

    # The same snapshot with its dump cut off in the middle, as a damaged disk or an interrupted copy leaves it.
    staging = settings.BASE_DIR / "var" / "test" / "corrupt"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "files").mkdir(parents=True)
    restic.dump(good.snapshot_id, "/db.sql", into=staging / "db.sql")
    restic.dump(good.snapshot_id, "/files/wp-content.tar", into=staging / "files" / "wp-content.tar")
    dump = (staging / "db.sql").read_bytes()
    (staging / "db.sql").write_bytes(dump[: len(dump) // 2])
    summary = restic.backup(["db.sql", "files"], cwd=staging, tags=[*store_tags(live_store), "manual"])
    shutil.rmtree(staging)
    corrupt = BackupRun.objects.create(
        store=live_store, kind="manual", status="succeeded", snapshot_id=summary.snapshot_id, finished_at=timezone.now()
    )

    corrupted = verify(corrupt, run_backups_worker, capture)

    assert corrupted.verify_job.status == ProvisioningJob.Status.FAILED
    assert corrupted.verified_at is None
    assert "the dump does not import" in corrupted.verify_error or "row counts differ" in corrupted.verify_error
    # The front page of a copy that failed is never checked.
    assert corrupted.verify_job.steps.get(name="front_page").status == JobStep.Status.SKIPPED
    assert docker_client.labelled_objects(label=f"shophosting.verify={corrupt.pk}")["containers"] == []


def test_dump_row_counts_ignore_parentheses_and_quotes_inside_strings(tmp_path):
    dump = tmp_path / "db.sql"
    dump.write_bytes(
        b"-- MariaDB dump\n"
        b"INSERT INTO `wp_posts` VALUES (1,'a),(b'),(2,'it\\'s (fine)'),(3,'back\\\\slash');\n"
        b"INSERT INTO `wp_options` VALUES (1,'x');\n"
        b"INSERT INTO `wp_posts` VALUES (4,'');\n"
    )

    assert dump_row_counts(dump) == {"wp_posts": 4, "wp_options": 1}


def test_system_and_code_backups_hold_the_platform_database_configuration_and_code(
    restic_repository, run_backups_worker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        system = system_backup_enqueue(kind=BackupRun.Kind.SYSTEM)
        code = system_backup_enqueue(kind=BackupRun.Kind.CODE)
        with pytest.raises(BackupConflict, match="already running"):
            system_backup_enqueue(kind=BackupRun.Kind.SYSTEM)
    run_backups_worker()

    system.refresh_from_db()
    code.refresh_from_db()
    assert system.status == RunStatus.SUCCEEDED, system.error
    assert code.status == RunStatus.SUCCEEDED, code.error
    staging = settings.BASE_DIR / "var" / "test" / "system-restore"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    restic.dump(system.snapshot_id, "/platform-db.sql", into=staging / "db.sql")
    assert "CREATE TABLE `billing_plan`" in (staging / "db.sql").read_text()
    assert "super_admin" in (staging / "db.sql").read_text()  # committed rows (the roles) are in the dump
    shutil.rmtree(staging)
    [snapshot] = [s for s in restic.snapshots(tags=["code"]) if s["id"] == code.snapshot_id]
    assert snapshot["paths"] == [str(settings.BASE_DIR)]
    listing = restic.run(["ls", "--json", code.snapshot_id, str(settings.BASE_DIR / "backups" / "restic.py")])
    assert "restic.py" in listing


def test_a_deleted_stores_backups_are_kept_for_the_retention_period_after_teardown(
    user_factory, woo_plan, restic_repository
):
    from stores.models import StoreEvent
    from stores.services import store_transition

    woo_plan.daily_backups = False  # 14 days
    woo_plan.save()
    staging = settings.BASE_DIR / "var" / "test" / "after-teardown"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "db.sql").write_text("-- final\n")
    stores = {}
    for name, deleted_days_ago in (("long-gone", 15), ("recent", 5)):
        store = store_create(customer=user_factory(), plan=woo_plan, domain=f"{name}.test")
        final = restic.backup(["db.sql"], cwd=staging, tags=[f"store-{store.pk}", "final"])
        BackupRun.objects.create(store=store, kind="final", status="succeeded", snapshot_id=final.snapshot_id)
        store_transition(store_id=store.pk, to=Store.Status.DELETING)
        store_transition(store_id=store.pk, to=Store.Status.DELETED)
        StoreEvent.objects.filter(store=store, new_status=Store.Status.DELETED).update(
            created_at=timezone.now() - dt.timedelta(days=deleted_days_ago)
        )
        stores[name] = (store, final.snapshot_id)
    shutil.rmtree(staging)

    backups_prune()

    gone, gone_snapshot = stores["long-gone"]
    recent, recent_snapshot = stores["recent"]
    assert restic.snapshots(tags=[f"store-{gone.pk}"]) == []
    assert BackupRun.objects.get(snapshot_id=gone_snapshot).forgotten_at is not None
    assert [s["id"] for s in restic.snapshots(tags=[f"store-{recent.pk}"])] == [recent_snapshot]


# Tenant table names that break naive SQL: a backtick, spaces, semicolons, a quote, and one that would drop
# a table if it were pasted into a statement.
ODD_TABLES = {"we`ird tab; le": 2, "it's; x": 3, "x' ; DROP TABLE wp_options; #": 1}


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@pytest.fixture
def unreadable_store(store_in_status):
    """An active store (no containers) whose credentials no CREDENTIALS_KEY decrypts any more (a lost key),
    with a snapshot on record: its verification cannot even start."""
    store = store_in_status("active", domain="lostkey.test")
    Store.objects.filter(pk=store.pk).update(credentials_encrypted="gAAAAABnot-a-valid-token")
    BackupRun.objects.create(
        store=store, kind="scheduled", status="succeeded", snapshot_id="f" * 64, finished_at=timezone.now()
    )
    return store


def test_verification_quotes_tenant_table_names_and_one_broken_store_never_stops_the_others(
    unreadable_store, live_store, run_backups_worker, django_capture_on_commit_callbacks, mailoutbox, settings
):
    settings.ADMINS = [("Operations", "ops@example.com")]

    assert unreadable_store.pk < live_store.pk  # verified first: its failure must not end the run
    for name, rows in ODD_TABLES.items():
        values = ",".join(f"({n})" for n in range(rows))
        sql(live_store, f"CREATE TABLE {quoted(name)} (id INT); INSERT INTO {quoted(name)} VALUES {values}")  # noqa: S608
    back_up(live_store, BackupRun.Kind.MANUAL, run_backups_worker, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):  # enqueued once committed
        queued = backups_verify()
    assert [run.store_id for run in queued] == [unreadable_store.pk, live_store.pk]
    with django_capture_on_commit_callbacks(execute=True):  # a failure is mailed once committed
        run_backups_worker()  # one job per store, in this order: the first one's failure does not stop the second

    by_store = {run.store_id: BackupRun.objects.get(pk=run.pk) for run in queued}
    assert by_store[unreadable_store.pk].verify_job.status == ProvisioningJob.Status.FAILED
    assert "cannot be decrypted" in by_store[unreadable_store.pk].verify_error
    assert by_store[live_store.pk].verify_error == "" and by_store[live_store.pk].verified_at is not None
    failures = [m.subject for m in mailoutbox if "verification failed" in m.subject]
    assert len(failures) == 1 and "lostkey.test" in failures[0]  # the broken one, to the admins
    # Counted by the store's own database: each name is one identifier, and nothing else runs (pasted into
    # the statement, the last name would drop wp_options).
    payload = "x' ; DROP TABLE wp_options; #"
    assert _row_counts(f"{live_store.slug}-db", [payload], None) == {payload: 1}
    assert sql(live_store, "SHOW TABLES LIKE 'wp_options'") == "wp_options"
    assert _row_counts(f"{live_store.slug}-db", sorted(ODD_TABLES), None) == ODD_TABLES


def test_dump_row_counts_read_table_names_with_doubled_backticks(tmp_path):
    dump = tmp_path / "db.sql"
    dump.write_bytes(
        b"INSERT INTO `we``ird tab; le` VALUES (1),(2);\n"
        b"INSERT INTO `it's; x` VALUES (1),(2),(3);\n"
        b"INSERT INTO `plain` VALUES (1);\n"
    )

    assert dump_row_counts(dump) == {"we`ird tab; le": 2, "it's; x": 3, "plain": 1}
