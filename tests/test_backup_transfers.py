"""Taking a store away and bringing one in (backups/README.md, "Downloads and imports"), on the real engine with
a real restic repository: a backup is downloaded through its signed link (and the link expires, and a changed
one is refused), that download is imported into a new store whose front page then shows the same title and
posts, and bad uploads are refused with a clear error, changing nothing; one that fails half-way is undone. A
single file and a folder are put back from a snapshot's listing.

The two stores are provisioned once for the module (committed, removed at the end): each test runs in its own
transaction on top of them, so the suite pays for two stores, not one per test."""

import gzip
import io
import re
import tarfile
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from backups.models import BackupDownload, BackupRun, FileRestore, ImportUpload, RunStatus, StoreImport
from backups.services.download import downloads_remove_expired
from backups.services.store_import import (
    ImportRejected,
    UploadOffsetMismatch,
    UploadRefused,
    dump_check,
    files_check,
    import_request,
    upload_append,
    upload_start,
)
from backups.services.transfers import transfers_clean_up
from provisioning import docker_client
from provisioning.models import JobStep
from stores.models import Store
from tests.test_backups import WP_CONTENT, back_up, insert_post, job_log, posts, sql, web
from tests.test_browser import Tab, browser, platform  # noqa: F401 - the browser tests' fixtures
from tests.test_provisioning import fetch

SOURCE_TITLE = "Taken Away"
SOURCE_POSTS = ("Our autumn catalogue", "Opening hours")
WORDPRESS_VOLUMES = {"wp-content": "/var/www/html/wp-content"}
GB = 1024**3


# --- The checks, on files alone (no Docker) -----------------------------------------------------------------

DUMP = b"""-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB
/*!40101 SET NAMES utf8mb4 */;
CREATE TABLE `wp_options` (`option_id` bigint(20) unsigned NOT NULL);
INSERT INTO `wp_options` VALUES (1);
CREATE TABLE `wp_posts` (`ID` bigint(20) unsigned NOT NULL);
"""


def tar_gz(entries: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o4755 if name.endswith(".sh") else 0o644
            archive.addfile(info, io.BytesIO(content))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def test_a_gzipped_dump_with_the_applications_tables_passes_and_is_written_uncompressed(tmp_path):
    source = tmp_path / "shop.sql.gz"
    source.write_bytes(gzip.compress(DUMP))
    assert dump_check(source, into=tmp_path / "db.sql", platform="woocommerce", limit_bytes=GB) == len(DUMP)
    assert (tmp_path / "db.sql").read_bytes() == DUMP
    plain = tmp_path / "shop.sql"
    plain.write_bytes(DUMP)
    assert dump_check(plain, into=tmp_path / "again.sql", platform="woocommerce", limit_bytes=GB) == len(DUMP)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (DUMP.replace(b"wp_posts", b"wp_pages"), "has no wp_posts table"),
        (b"this is a spreadsheet\n1,2,3\n", "not a MariaDB or MySQL dump"),
        (DUMP + b"USE `mysql`;\nDROP TABLE user;\n", "switches to or creates another database"),
        (DUMP.replace(b"CREATE TABLE `wp_options`", b"CREATE DATABASE other;\nCREATE TABLE `wp_options`"), "line 3"),
        (gzip.compress(DUMP)[:40], "not a readable gzip file"),
    ],
)
def test_a_dump_that_is_not_one_stores_database_is_rejected_with_the_reason(tmp_path, content, error):
    source = tmp_path / "upload.sql.gz"
    source.write_bytes(content)
    with pytest.raises(ImportRejected) as refused:
        dump_check(source, into=tmp_path / "db.sql", platform="woocommerce", limit_bytes=GB)
    assert error.lower() in str(refused.value).lower()


def test_a_dump_larger_than_the_allowance_is_rejected(tmp_path):
    source = tmp_path / "big.sql"
    source.write_bytes(DUMP + b"-- padding\n" * 100)
    with pytest.raises(ImportRejected, match="larger than your plan's disk allowance"):
        dump_check(source, into=tmp_path / "db.sql", platform="woocommerce", limit_bytes=len(DUMP))


def test_a_files_archive_is_split_per_volume_with_set_id_bits_dropped(tmp_path):
    source = tmp_path / "files.tar.gz"
    source.write_bytes(
        tar_gz(
            {"./wp-content/index.php": b"<?php", "wp-content/uploads/run.sh": b"#!/bin/sh"},
            symlinks={"wp-content/l": "index.php"},
        )
    )
    sizes = files_check(source, into=tmp_path / "out", volumes=WORDPRESS_VOLUMES, limit_bytes=GB)
    assert sizes == {"wp-content": len(b"<?php") + len(b"#!/bin/sh")}
    with tarfile.open(tmp_path / "out" / "wp-content.tar") as split:
        members = {member.name: member for member in split}
    assert set(members) == {"wp-content/index.php", "wp-content/uploads/run.sh", "wp-content/l"}
    assert members["wp-content/uploads/run.sh"].mode == 0o755  # no setuid bit survives


@pytest.mark.parametrize(
    ("entries", "symlinks", "error"),
    [
        ({"../etc/passwd": b"x", "wp-content/a": b"x"}, None, "unsafe path"),
        ({"/wp-content/a": b"x"}, None, "unsafe path"),
        ({"public_html/index.php": b"x"}, None, "must hold wp-content/ at its top"),
        ({"wp-content/a": b"x"}, {"wp-content/secrets": "/etc/shadow"}, "link leaving it"),
        ({}, None, "holds nothing under wp-content/"),
    ],
)
def test_a_files_archive_that_is_not_the_stores_files_is_rejected(tmp_path, entries, symlinks, error):
    source = tmp_path / "files.tar.gz"
    source.write_bytes(tar_gz(entries, symlinks=symlinks))
    with pytest.raises(ImportRejected, match=error):
        files_check(source, into=tmp_path / "out", volumes=WORDPRESS_VOLUMES, limit_bytes=GB)


def test_a_files_archive_that_is_not_gzip_or_too_large_is_rejected(tmp_path):
    source = tmp_path / "files.tar.gz"
    source.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ImportRejected, match="not a readable .tar.gz file"):
        files_check(source, into=tmp_path / "out", volumes=WORDPRESS_VOLUMES, limit_bytes=GB)
    source.write_bytes(tar_gz({"wp-content/big.bin": b"x" * 5000}))
    with pytest.raises(ImportRejected, match="more than your plan's disk allowance"):
        files_check(source, into=tmp_path / "out", volumes=WORDPRESS_VOLUMES, limit_bytes=4000)


# --- Uploads: chunked, resumable, capped by the plan (database only) ----------------------------------------


@pytest.mark.django_db
def test_an_upload_arrives_in_chunks_resumes_at_the_servers_offset_and_is_capped_by_the_plan(
    client, recorded_active_store
):
    store = recorded_active_store
    client.force_login(store.customer)
    content = gzip.compress(DUMP * 50)
    start = client.post(
        reverse("backups:upload_start", args=[store.pk]),
        {"part": "database", "filename": "shop.sql.gz", "size": len(content)},
    )
    assert start.status_code == 201, start.content
    url = start.json()["url"]

    def put(offset: int, chunk: bytes):
        return client.put(f"{url}?offset={offset}", chunk, content_type="application/octet-stream")

    assert put(0, content[:100]).json()["offset"] == 100
    # The client thinks its second chunk was lost and sends from 50 again: told where the server's copy ends.
    mismatch = put(50, content[50:150])
    assert mismatch.status_code == 409 and mismatch.json()["offset"] == 100
    assert client.get(url).json() == {"id": start.json()["id"], "offset": 100, "size": len(content)}
    assert put(100, content[100:]).json()["offset"] == len(content)
    upload = ImportUpload.objects.get(pk=start.json()["id"])
    assert upload.complete and upload.completed_at is not None
    assert (settings_path(upload)).read_bytes() == content
    too_far = put(len(content), b"more")
    assert too_far.status_code == 400 and "past the" in too_far.json()["error"]

    # The plan's disk allowance counts every pending upload.
    allowance = store.plan.disk_allowance_gb * GB
    refused = client.post(
        reverse("backups:upload_start", args=[store.pk]),
        {"part": "files", "filename": "files.tar.gz", "size": allowance},
    )
    assert refused.status_code == 400 and "does not fit in your plan's disk allowance" in refused.json()["error"]
    wrong_type = client.post(
        reverse("backups:upload_start", args=[store.pk]), {"part": "files", "filename": "files.zip", "size": 10}
    )
    assert wrong_type.status_code == 400 and "is not a .tar.gz or .tgz file" in wrong_type.json()["error"]
    assert ImportUpload.objects.filter(store=store).count() == 1


def settings_path(upload: ImportUpload):
    from backups.services.store_import import upload_path

    return upload_path(upload)


@pytest.mark.django_db
def test_an_import_needs_both_uploads_complete_and_unused(recorded_active_store):
    store = recorded_active_store
    database = upload_start(store_id=store.pk, part="database", filename="shop.sql", size=len(DUMP))
    files_content = tar_gz({"wp-content/a": b"x"})
    files = upload_start(store_id=store.pk, part="files", filename="files.tar.gz", size=len(files_content))
    with pytest.raises(UploadRefused, match="not completely uploaded"):
        import_request(store_id=store.pk, database_upload_id=database.pk, files_upload_id=files.pk)
    upload_append(upload_id=database.pk, offset=0, stream=io.BytesIO(DUMP), length=len(DUMP))
    with pytest.raises(UploadOffsetMismatch):
        upload_append(upload_id=files.pk, offset=5, stream=io.BytesIO(files_content), length=len(files_content))
    upload_append(upload_id=files.pk, offset=0, stream=io.BytesIO(files_content), length=len(files_content))
    with pytest.raises(UploadRefused, match="Upload the files archive first"):
        import_request(store_id=store.pk, database_upload_id=database.pk, files_upload_id=database.pk)
    assert StoreImport.objects.count() == 0
    # Abandoned uploads go with the periodic clean-up.
    later = timezone.now() + timedelta(hours=settings.BACKUP_IMPORT_UPLOAD_KEEP_HOURS, minutes=1)
    assert transfers_clean_up(now=later)["uploads"] == [files.pk, database.pk]
    assert not settings_path(database).exists()


# --- On the real engine: two stores for the module ----------------------------------------------------------


@pytest.fixture(scope="module")
def stores(django_db_setup, django_db_blocker, store_images, nginx_server, acme_server, restic_repository):
    """Two live WordPress stores, committed: `source` with posts and a backup, `target` a new store of another
    customer's name and title. Everything they made is removed at the end."""
    from accounts.models import User
    from accounts.services import customer_create
    from billing.models import Plan
    from billing.services.plans import plan_catalogue_seed
    from provisioning.orders import store_order_paid
    from stores.services import store_create
    from tests.plugins.rq import _burst

    label = f"shophosting.env={settings.STORE_OBJECT_PREFIX}"
    with django_db_blocker.unblock():
        docker_client.labelled_objects_remove(label=label)
        first_user = (User.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        first_store = (Store.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        first_audit = (AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        try:  # a setup that fails half-way is cleaned up too
            plan_catalogue_seed()
            plan = Plan.objects.get(slug="woocommerce-commerce-core")
            made = {}
            for role, domain, title in (
                ("source", "takeaway.test", SOURCE_TITLE),
                ("target", "bringin.test", "New Shop"),
            ):
                customer = customer_create(email=f"transfer-{role}@example.com", password="pw-123-pw-456")
                store = store_create(customer=customer, plan=plan, domain=domain, site_title=title)
                store_order_paid(store_id=store.pk)  # autocommit: its job is queued at once
                _burst("provisioning")
                store.refresh_from_db()
                assert store.status == Store.Status.ACTIVE, store.jobs.first().error
                made[role] = store
            for title in SOURCE_POSTS:
                insert_post(made["source"], title)
            _burst("backups")  # each store's first backup, queued when it went live: the source's holds the posts
            for store in made.values():
                run = store.backup_runs.get()
                assert run.status == RunStatus.SUCCEEDED, run.error
            yield made
        finally:
            BackupRun.objects.filter(store__pk__gte=first_store).delete()
            Store.objects.filter(pk__gte=first_store).delete()
            User.objects.filter(pk__gte=first_user).delete()
            AuditEvent.objects.filter(pk__gte=first_audit).delete()
            docker_client.labelled_objects_remove(label=label)


@pytest.fixture(scope="module")
def downloaded(stores, django_db_blocker, tmp_path_factory):
    """The source's backup downloaded the merchant's way: asked for on the backups page, prepared by its job,
    then both files fetched through the signed links by a client with no session. Committed for the module."""
    from tests.plugins.rq import _burst

    source = stores["source"]
    snapshot = source.backup_runs.get().snapshot_id
    with django_db_blocker.unblock():
        merchant = Client()
        merchant.force_login(source.customer)
        asked = merchant.post(reverse("backups:download_request", args=[source.pk, snapshot]))
        download = BackupDownload.objects.get(store=source)
        assert asked.status_code == 302 and asked["Location"] == reverse(
            "stores:job", args=[source.pk, download.job_id]
        )
        _burst("backups")
        download.refresh_from_db()
        assert download.status == RunStatus.SUCCEEDED, f"{download.error}\n{job_log(download.job_id)}"
        page = merchant.get(reverse("backups:downloads", args=[source.pk])).content.decode()
        anonymous = Client()
        links = re.findall(r'href="(/backup-downloads/[^"]+)"', page)
        assert len(links) == 2, page
        files = {}
        directory = tmp_path_factory.mktemp("download")
        for (part, name), link in zip((("database", "database.sql.gz"), ("files", "files.tar.gz")), links, strict=True):
            response = anonymous.get(link)
            assert response.status_code == 200, response.content[:500]
            files[part] = directory / name
            files[part].write_bytes(b"".join(response.streaming_content))
            files[f"{part}_disposition"] = response["Content-Disposition"]
            files[f"{part}_link"] = link
        return {"download": download, "page": page, **files}


@pytest.mark.django_db
@pytest.mark.docker
def test_a_backup_is_downloaded_through_its_signed_link_with_its_size_shown(stores, downloaded):
    download = downloaded["download"]
    assert download.database_bytes == downloaded["database"].stat().st_size
    assert download.files_bytes == downloaded["files"].stat().st_size
    page = downloaded["page"]
    for size in (download.database_bytes, download.files_bytes, download.total_bytes):
        assert filesize(size) in page
    assert 'filename="takeaway.test-' in downloaded["database_disposition"]
    # The dump is the store's database with its posts and its title; the files are its wp-content.
    dump = gzip.decompress(downloaded["database"].read_bytes()).decode()
    assert "CREATE TABLE `wp_posts`" in dump and all(title in dump for title in SOURCE_POSTS)
    assert SOURCE_TITLE in dump
    with tarfile.open(downloaded["files"]) as archive:
        names = archive.getnames()
    assert "wp-content" in names and any(name.startswith("wp-content/themes/") for name in names)
    # Each file served was audited, with no one signed in.
    served = AuditEvent.objects.filter(event="backup_download_served", detail__download_id=download.pk)
    assert sorted(event.detail["part"] for event in served) == ["database", "files"]
    assert {event.actor_id for event in served} == {None}


def filesize(size: int) -> str:
    from django.template.defaultfilters import filesizeformat

    return str(filesizeformat(size))


@pytest.mark.django_db
@pytest.mark.docker
def test_a_download_link_expires_and_a_changed_one_is_refused_with_a_clear_error(client, downloaded):
    link = downloaded["database_link"]
    assert client.get(link).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(minutes=settings.BACKUP_DOWNLOAD_LINK_MINUTES, seconds=5)):
        expired = client.get(link)
    assert expired.status_code == 410
    assert "This download link has expired" in expired.content.decode()

    token = link.rstrip("/").rsplit("/", 1)[1]
    value, signature = token.rsplit(":", 1)
    for forged in (f"{value}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}", "eyJkb3dubG9hZCI6MX0:x:y"):
        refused = client.get(f"/backup-downloads/{forged}/")
        assert refused.status_code == 403
        assert "This download link is not valid" in refused.content.decode()
    reasons = AuditEvent.objects.filter(event="backup_download_refused").values_list("detail__reason", flat=True)
    assert sorted(reasons) == ["expired", "invalid", "invalid"]

    # Once the keep time has passed the periodic clean-up removes the archives: the link stops working.
    download = downloaded["download"]
    later = timezone.now() + timedelta(hours=settings.BACKUP_DOWNLOAD_KEEP_HOURS, minutes=1)
    assert downloads_remove_expired(now=later) == [download.pk]
    gone = client.get(link)
    assert gone.status_code == 410 and "This download has been removed" in gone.content.decode()


def upload(client, store: Store, part: str, path, *, chunk: int) -> int:
    """The browser's way (static/js/chunked-upload.js): announce, then PUT chunks at the server's offset."""
    content = path.read_bytes()
    start = client.post(
        reverse("backups:upload_start", args=[store.pk]), {"part": part, "filename": path.name, "size": len(content)}
    )
    assert start.status_code == 201, start.content
    url, offset = start.json()["url"], 0
    while offset < len(content):
        answer = client.put(
            f"{url}?offset={offset}", content[offset : offset + chunk], content_type="application/octet-stream"
        )
        assert answer.status_code == 200, answer.content
        offset = answer.json()["offset"]
    return start.json()["id"]


def import_through_the_page(client, store, database, files, run_backups_worker, capture) -> StoreImport:
    client.force_login(store.customer)
    ids = {
        "database_upload": upload(client, store, "database", database, chunk=64 * 1024),
        "files_upload": upload(client, store, "files", files, chunk=256 * 1024),
    }
    with capture(execute=True):
        started = client.post(reverse("backups:import_start", args=[store.pk]), {**ids, "confirm": store.domain})
    assert started.status_code == 302, started.content
    run_backups_worker()
    return StoreImport.objects.filter(store=store).order_by("-pk").first()


@pytest.mark.django_db
@pytest.mark.docker
def test_the_download_imported_into_a_new_store_shows_the_same_title_and_posts(
    client, stores, downloaded, run_backups_worker, django_capture_on_commit_callbacks
):
    target = stores["target"]
    assert SOURCE_TITLE not in fetch(target.port, target.domain).text
    store_import = import_through_the_page(
        client,
        target,
        downloaded["database"],
        downloaded["files"],
        run_backups_worker,
        django_capture_on_commit_callbacks,
    )
    assert store_import.status == RunStatus.SUCCEEDED, f"{store_import.error}\n{job_log(store_import.job_id)}"
    front = fetch(target.port, target.domain).text
    assert f"<title>{SOURCE_TITLE}" in front
    assert all(title in front for title in SOURCE_POSTS)
    assert store_import.pre_import_backup.status == RunStatus.SUCCEEDED
    assert store_import.pre_import_backup.get_kind_display() == "Before an import"
    assert JobStep.objects.get(job_id=store_import.job_id, name="put_back").status == JobStep.Status.SKIPPED
    # The uploads are gone with the job.
    assert not ImportUpload.objects.filter(store=target, removed_at=None).exists()


@pytest.mark.django_db
@pytest.mark.docker
def test_a_bad_dump_is_refused_before_anything_changes_and_one_failing_half_way_is_undone(
    client, stores, downloaded, run_backups_worker, django_capture_on_commit_callbacks, tmp_path
):
    target = stores["target"]
    before = posts(target)
    # Not a store: the application's tables are missing. The first step says so; no backup, nothing changed.
    bad = tmp_path / "other.sql.gz"
    bad.write_bytes(gzip.compress(b"-- MariaDB dump 10.19\nCREATE TABLE `invoices` (`id` int);\n"))
    refused = import_through_the_page(
        client, target, bad, downloaded["files"], run_backups_worker, django_capture_on_commit_callbacks
    )
    assert refused.status == RunStatus.FAILED
    assert refused.error.startswith("The database dump has no wp_options, wp_posts table")
    assert refused.pre_import_backup is None
    assert posts(target) == before
    page = client.get(reverse("backups:import", args=[target.pk])).content.decode()
    assert "The database dump has no wp_options, wp_posts table" in page

    # A dump that passes the checks but breaks while it is imported: the database was already replaced when
    # it fails, so the undo step puts the store back from the pre-import backup.
    half = tmp_path / "half.sql.gz"
    half.write_bytes(gzip.compress(DUMP + b"INSERT INTO `wp_posts` VALUES (1, 'this row does not fit');\n"))
    failed = import_through_the_page(
        client, target, half, downloaded["files"], run_backups_worker, django_capture_on_commit_callbacks
    )
    assert failed.status == RunStatus.FAILED
    assert "put back as it was" in failed.error
    steps = dict(JobStep.objects.filter(job_id=failed.job_id).values_list("name", "status"))
    assert steps["database"] == JobStep.Status.FAILED and steps["put_back"] == JobStep.Status.SUCCEEDED
    assert posts(target) == before
    assert sql(target, "SELECT COUNT(*) FROM wp_options") != "0"
    assert fetch(target.port, target.domain).status == 200


# --- A single file or folder, chosen from the snapshot's listing --------------------------------------------

UPLOADS = f"{WP_CONTENT}/uploads/2026/12"


@pytest.mark.django_db
@pytest.mark.docker
def test_a_single_file_and_a_folder_are_restored_from_the_snapshots_listing(
    client, stores, run_backups_worker, django_capture_on_commit_callbacks
):
    source = stores["source"]
    capture = django_capture_on_commit_callbacks
    web(
        source,
        f"mkdir -p {UPLOADS}/gallery && echo 'the original note' > {UPLOADS}/note.txt"
        f" && echo one > {UPLOADS}/gallery/one.txt && echo two > {UPLOADS}/gallery/two.txt"
        f" && chown -R www-data:www-data {WP_CONTENT}/uploads",
    )
    snapshot = back_up(source, BackupRun.Kind.MANUAL, run_backups_worker, capture)
    assert snapshot.file_lists.get().entry_count > 10
    # After the backup: the note is overwritten, one picture deleted, and a new one added.
    web(
        source,
        f"echo 'changed' > {UPLOADS}/note.txt && rm {UPLOADS}/gallery/one.txt && echo new > {UPLOADS}/gallery/new.txt",
    )

    client.force_login(source.customer)
    files_url = reverse("backups:files", args=[source.pk, snapshot.snapshot_id])
    top = client.get(files_url).content.decode()
    assert 'data-path="wp-content"' in top
    folder = client.get(files_url, {"path": "wp-content/uploads/2026/12"})
    assert folder.status_code == 200
    listed = re.findall(r'data-path="([^"]+)"', folder.content.decode())
    assert listed == ["wp-content/uploads/2026/12/gallery", "wp-content/uploads/2026/12/note.txt"]  # folders first
    assert client.get(files_url, {"path": "wp-content/../../etc"}).status_code == 404
    assert client.get(files_url, {"path": "wp-content/uploads/2026/12/note.txt"}).status_code == 404  # not a folder

    def restore_path(path: str) -> FileRestore:
        with capture(execute=True):
            asked = client.post(reverse("backups:file_restore", args=[source.pk, snapshot.snapshot_id]), {"path": path})
        assert asked.status_code == 302, asked.content
        run_backups_worker()
        restored = FileRestore.objects.filter(store=source).order_by("-pk").first()
        assert restored.status == RunStatus.SUCCEEDED, f"{restored.error}\n{job_log(restored.job_id)}"
        return restored

    restore_path("wp-content/uploads/2026/12/note.txt")
    assert web(source, f"cat {UPLOADS}/note.txt") == "the original note"
    assert web(source, f"ls {UPLOADS}/gallery") == "new.txt\ntwo.txt"  # only the one file was put back
    folder_restore = restore_path("wp-content/uploads/2026/12/gallery")
    assert folder_restore.restored_count == 3  # the folder and its two files
    assert web(source, f"ls {UPLOADS}/gallery") == "new.txt\none.txt\ntwo.txt"  # the later file is kept
    assert web(source, f"stat -c %U:%G {UPLOADS}/gallery/one.txt") == "www-data:www-data"  # ownership kept
    # A path the snapshot does not list is a 404, and queues nothing.
    missing = client.post(
        reverse("backups:file_restore", args=[source.pk, snapshot.snapshot_id]), {"path": "wp-content/nothing-here"}
    )
    assert missing.status_code == 404
    assert FileRestore.objects.filter(store=source).count() == 2
    # Once retention has forgotten the snapshot (as snapshots_reconcile records it), the clean-up drops its list.
    file_lists = list(snapshot.file_lists.values_list("pk", flat=True))
    BackupRun.objects.filter(pk=snapshot.pk).update(forgotten_at=timezone.now())
    assert transfers_clean_up()["file_lists"] == file_lists
    assert not snapshot.file_lists.exists()


# --- The import page's chunked upload, in a real browser ----------------------------------------------------


@pytest.mark.docker  # Chromium and the live server share the lock with the other browser tests
def test_the_import_page_uploads_in_chunks_and_resumes_an_interrupted_upload_in_chromium(
    browser,  # noqa: F811 - the fixture imported from tests.test_browser
    platform,  # noqa: F811
    settings,
    tmp_path,
):
    """static/js/chunked-upload.js against the real endpoints: a file goes up in 64 KB chunks; when the
    connection drops mid-file, choosing the file again asks the server where its copy ends and goes on."""
    from accounts.services import customer_create
    from billing.models import Plan
    from stores.services import store_create, store_transition

    settings.BACKUP_IMPORT_CHUNK_BYTES = 64 * 1024
    customer = customer_create(email="browser-import@example.com", password="browser import pass 7")
    store = store_create(customer=customer, plan=Plan.objects.get(slug="woocommerce-commerce-core"), domain="i.test")
    for status in ("queued", "provisioning", "active"):
        store_transition(store_id=store.pk, to=status)
    dump = tmp_path / "shop.sql"
    dump.write_bytes(DUMP + b"".join(b"-- row %06d of an old shop's dump\n" % n for n in range(8000)))  # ~300 KB
    session = Client()
    session.force_login(customer)
    tab = Tab(browser, platform["url"])
    cookie = session.cookies[settings.SESSION_COOKIE_NAME].value
    tab.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": platform["url"]}])
    page = tab.page
    assert page.goto(reverse("backups:import", args=[store.pk])).status == 200

    dropped = []

    def drop_the_second_chunk(route):
        if route.request.method == "PUT" and "offset=65536" in route.request.url and not dropped:
            dropped.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/import/uploads/*/?offset=*", drop_the_second_chunk)
    page.set_input_files("#database-file", str(dump))
    # (a selector, not wait_for_function: the platform's CSP allows no eval)
    page.wait_for_selector("#upload-status:has-text('Failed to fetch')")
    upload = ImportUpload.objects.get(store=store)
    assert dropped and upload.size_received == 65536  # the first chunk arrived, the second did not

    page.set_input_files("#database-file", [])
    page.set_input_files("#database-file", str(dump))
    page.wait_for_selector("#upload-status:has-text('shop.sql uploaded.')")
    upload.refresh_from_db()
    assert upload.complete and ImportUpload.objects.filter(store=store).count() == 1  # resumed, not restarted
    assert settings_path(upload).read_bytes() == dump.read_bytes()
    assert page.input_value("#database_upload") == str(upload.pk)
    tab.shot("import-uploaded")
    assert [error for error in tab.errors if "ERR_CONNECTION_RESET" not in error] == [], tab.errors
    tab.context.close()
