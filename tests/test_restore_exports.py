"""Merchant-safe restore: before a database restore, the rows created or changed since the snapshot are found,
summed up in plain words before the merchant confirms, exported (CSV and SQL) and downloadable by the store's
owner only, for the backup retention. WordPress rows on a real store, with a real restic repository; the
WooCommerce table list against WooCommerce's own table definitions in a scratch MariaDB database."""

import contextlib
import csv
import io
import os
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import MySQLdb
import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from backups import app_tables
from backups.models import BackupRun, RestoreExport, RestoreRun, RunStatus
from backups.services.records import SnapshotNotFound
from backups.services.restore import restore_request
from backups.services.restore_export import (
    ExportNotReady,
    export_path,
    restore_export_request,
    xml_rows_to_csv,
)
from backups.services.retention import restore_exports_remove_expired
from tests.test_backups import back_up, job_log, live_store, sql  # noqa: F401 - live_store is a fixture
from tests.test_backups import restore as restore_and_wait

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures"


# --- The WooCommerce table list, against WooCommerce's schema (no Docker) ---------------------------------


@contextlib.contextmanager
def scratch_database(schema: Path, name: str):
    """A scratch database on the test MariaDB server holding the tables of a schema fixture."""
    server = connection.settings_dict
    name = f"scratch_{name}_{os.getpid()}"
    db = MySQLdb.connect(
        host=server["HOST"] or "127.0.0.1",
        port=int(server["PORT"] or 3306),
        user=server["USER"],
        password=server["PASSWORD"] or "",
        charset="utf8mb4",
    )
    cursor = db.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS {name}")
    cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    cursor.execute(f"USE {name}")
    for statement in schema.read_text().split(";\n"):
        body = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
        if body.strip():
            cursor.execute(body)
    try:
        yield cursor
    finally:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        db.close()


@pytest.fixture
def scratch_woocommerce_database():
    with scratch_database(FIXTURES / "woocommerce" / "schema.sql", "woo") as cursor:
        yield cursor


@pytest.fixture
def scratch_magento_database():
    with scratch_database(FIXTURES / "magento" / "schema.sql", "magento") as cursor:
        yield cursor


def columns_of(cursor) -> dict[str, set[str]]:
    cursor.execute("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()")
    found: dict[str, set[str]] = {}
    for table, column in cursor.fetchall():
        found.setdefault(table, set()).add(column)
    return found


def assert_every_table_and_column_is_there(platform: str, columns: dict[str, set[str]], prefix: str) -> None:
    application = app_tables.APPLICATIONS[platform]
    assert app_tables.table_prefix(application, columns) == prefix
    names = {selection.name for selection in application.selections}
    for selection in application.selections:
        table = prefix + selection.table
        assert table in columns, f"{selection.name}: no table {table}"
        have = {column.lower() for column in columns[table]}
        assert selection.columns() <= have, f"{selection.name}: {selection.columns() - have} not in {table}"
        if selection.parent:
            assert set(selection.parent.selections) <= names, selection.name
    planned = app_tables.plan(application.selections, columns=columns, prefix=prefix, cutoff=timezone.now())
    assert [p.selection.name for p in planned] == [s.name for s in application.selections]  # every one usable


def counted(cursor, planned: list[app_tables.Planned]) -> dict[str, tuple[int, int]]:
    """selection -> (rows since the cutoff, rows the summary counts), as the export job's statement finds them."""
    cursor.execute(app_tables.count_statement(planned))
    return {planned[int(index)].selection.name: (int(rows), int(count)) for index, rows, count in cursor}


def summary(planned: list[app_tables.Planned], results: dict[str, tuple[int, int]], platform: str) -> str:
    counts: dict[str, int] = {}
    for p in planned:
        if p.selection.noun:
            counts[p.selection.noun[0]] = counts.get(p.selection.noun[0], 0) + results[p.selection.name][1]
    return app_tables.summary_sentence(counts, selections=app_tables.selections_for(platform))


def test_every_table_and_column_the_woocommerce_list_names_is_in_woocommerces_schema(scratch_woocommerce_database):
    columns = columns_of(scratch_woocommerce_database)
    assert_every_table_and_column_is_there("woocommerce", columns, "wp_")
    selections = app_tables.selections_for("woocommerce")
    # The tables the issue names, every one of them covered.
    tables = {selection.table for selection in selections}
    assert {
        "wc_orders",
        "wc_order_addresses",
        "wc_order_operational_data",
        "wc_orders_meta",
        "woocommerce_order_items",
        "woocommerce_order_itemmeta",
        "wc_customer_lookup",
        "posts",
        "comments",
        "users",
    } <= tables


def test_the_woocommerce_statements_find_the_orders_items_notes_and_customers_since_the_cutoff(
    scratch_woocommerce_database,
):
    """Old rows stay out; a new HPOS order with its synchronised legacy copy counts once, and brings its
    addresses, data, meta, items and item meta; a note and a customer count; a revision is not a post."""
    cursor = scratch_woocommerce_database
    cutoff = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
    old, new = "2026-11-19 09:00:00", "2026-11-20 12:00:05"
    cursor.execute("SET time_zone = '+00:00'")
    for order_id, when in ((50, old), (100, new)):
        cursor.execute(
            "INSERT INTO wp_wc_orders (id, status, type, date_created_gmt, date_updated_gmt)"
            " VALUES (%s, 'wc-processing', 'shop_order', %s, %s)",
            (order_id, when, when),
        )
        # HPOS's compatibility mode keeps a copy of every order in wp_posts under the same id.
        cursor.execute(
            "INSERT INTO wp_posts (ID, post_content, post_title, post_excerpt, to_ping, pinged,"
            " post_content_filtered, post_type, post_modified_gmt) VALUES (%s, '', 'Order', '', '', '', '',"
            " 'shop_order', %s)",
            (order_id, when),
        )
        cursor.execute("INSERT INTO wp_wc_order_addresses (order_id, address_type) VALUES (%s, 'billing')", (order_id,))
        cursor.execute("INSERT INTO wp_wc_order_operational_data (order_id, order_key) VALUES (%s, 'k')", (order_id,))
        cursor.execute("INSERT INTO wp_wc_orders_meta (order_id, meta_key) VALUES (%s, 'm')", (order_id,))
        cursor.execute(
            "INSERT INTO wp_woocommerce_order_items (order_item_name, order_item_type, order_id)"
            " VALUES ('Hoodie', 'line_item', %s)",
            (order_id,),
        )
        cursor.execute(
            "INSERT INTO wp_woocommerce_order_itemmeta (order_item_id, meta_key, meta_value)"
            " VALUES (LAST_INSERT_ID(), '_qty', '1')"
        )
        cursor.execute(
            "INSERT INTO wp_comments (comment_post_ID, comment_author, comment_content, comment_type,"
            " comment_date_gmt) VALUES (%s, 'WooCommerce', 'Paid', 'order_note', %s)",
            (order_id, when),
        )
    cursor.execute(
        "INSERT INTO wp_wc_customer_lookup (first_name, last_name, date_registered, date_last_active)"
        " VALUES ('Old', 'Customer', %s, %s), ('New', 'Customer', %s, %s)",
        (old, old, new, new),
    )
    for post_type in ("post", "revision"):
        cursor.execute(
            "INSERT INTO wp_posts (post_content, post_title, post_excerpt, to_ping, pinged, post_content_filtered,"
            " post_type, post_modified_gmt) VALUES ('', 'News', '', '', '', '', %s, %s)",
            (post_type, new),
        )
    selections = app_tables.selections_for("woocommerce")
    planned = app_tables.plan(selections, columns=columns_of(cursor), prefix="wp_", cutoff=cutoff)

    results = counted(cursor, planned)

    assert results["orders"] == (1, 1)
    assert results["legacy_orders"] == (1, 0)  # the same order, already counted from wc_orders
    for child in ("order_addresses", "order_operational_data", "orders_meta", "order_items", "order_itemmeta"):
        assert results[child][0] == 1, child
    assert results["order_notes"] == (1, 1)
    assert results["customers"] == (1, 1)
    assert results["posts"] == (2, 1)  # the post and its revision are exported; the revision is not counted
    assert results["comments"] == (0, 0)  # the note is not a comment of the site
    assert summary(planned, results, "woocommerce") == "1 post, 1 order, 1 order note and 1 customer since this backup"
    # Without HPOS (WooCommerce before 8.2, or HPOS never turned on), orders are counted from wp_posts.
    without_hpos = {t: c for t, c in columns_of(cursor).items() if not t.startswith(("wp_wc_orders", "wp_wc_order_"))}
    legacy = app_tables.plan(selections, columns=without_hpos, prefix="wp_", cutoff=cutoff)
    results = counted(cursor, legacy)
    assert "orders" not in results and results["legacy_orders"] == (1, 1) and results["order_items"][0] == 1


def test_every_table_and_column_the_magento_list_names_is_in_magentos_schema_and_finds_the_right_rows(
    scratch_magento_database,
):
    cursor = scratch_magento_database
    columns = columns_of(cursor)
    assert_every_table_and_column_is_there("magento", columns, "")
    cutoff = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
    cursor.execute("SET time_zone = '+00:00'")
    for when in ("2026-11-19 09:00:00", "2026-11-20 12:00:05"):
        cursor.execute("INSERT INTO sales_order (created_at, updated_at) VALUES (%s, %s)", (when, when))
        cursor.execute("SELECT LAST_INSERT_ID()")
        (order_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO sales_order_item (order_id, sku, created_at) VALUES (%s, 'MH01', %s)", (order_id, when)
        )
        cursor.execute("INSERT INTO sales_order_address (parent_id, city) VALUES (%s, 'Lyon')", (order_id,))
        cursor.execute("INSERT INTO sales_order_payment (parent_id, method) VALUES (%s, 'checkmo')", (order_id,))
        cursor.execute("INSERT INTO sales_order_grid (entity_id, created_at) VALUES (%s, %s)", (order_id, when))
        cursor.execute(
            "INSERT INTO sales_order_status_history (parent_id, comment, created_at) VALUES (%s, 'Paid', %s)",
            (order_id, when),
        )
        for table in ("sales_invoice", "sales_shipment", "sales_creditmemo"):
            cursor.execute(
                f"INSERT INTO {table} (order_id, created_at, updated_at) VALUES (%s, %s, %s)",  # noqa: S608 - constants
                (order_id, when, when),
            )
        cursor.execute(
            "INSERT INTO customer_entity (email, created_at, updated_at) VALUES (%s, %s, %s)",
            (f"{when}@x.test", when, when),
        )
        cursor.execute(
            "INSERT INTO customer_address_entity (parent_id, city, street, created_at, updated_at)"
            " VALUES (LAST_INSERT_ID(), 'Lyon', 'Rue', %s, %s)",
            (when, when),
        )
    planned = app_tables.plan(app_tables.selections_for("magento"), columns=columns, prefix="", cutoff=cutoff)

    results = counted(cursor, planned)

    assert {name: rows for name, (rows, _) in results.items()} == {p.selection.name: 1 for p in planned}
    assert summary(planned, results, "magento") == (
        "1 order, 1 order comment, 1 invoice, 1 shipment, 1 credit memo and 1 customer since this backup"
    )


def test_the_prefix_is_read_from_the_database_and_never_pasted_unchecked():
    wordpress, magento = app_tables.APPLICATIONS["woocommerce"], app_tables.APPLICATIONS["magento"]
    assert app_tables.table_prefix(wordpress, {"shop_options", "shop_posts", "other"}) == "shop_"
    assert app_tables.table_prefix(wordpress, {"wp_options", "wp_posts", "b_options", "b_posts"}) == "wp_"
    assert app_tables.table_prefix(magento, {"core_config_data", "sales_order", "m2_core_config_data"}) == ""
    with pytest.raises(app_tables.NoApplicationTables, match="several WordPress installations"):
        app_tables.table_prefix(wordpress, {"a_options", "a_posts", "b_options", "b_posts"})
    with pytest.raises(app_tables.NoApplicationTables, match="no WordPress tables"):
        app_tables.table_prefix(wordpress, {"x`; DROP TABLE y; -- options", "x`; DROP TABLE y; -- posts"})
    with pytest.raises(app_tables.NoApplicationTables, match="no list of tables for 'shopify' stores"):
        app_tables.selections_for("shopify")


def test_the_csv_tells_null_from_text_keeps_newlines_and_never_hands_a_spreadsheet_a_formula(tmp_path):
    """From the XML the mariadb client writes: escaped text, NULL as xsi:nil, a control byte XML cannot carry."""
    xml = tmp_path / "rows.xml"
    xml.write_bytes(
        b'<?xml version="1.0"?>\n<resultset statement="SELECT" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        b'  <row>\n    <field name="ID">7</field>\n    <field name="title">a &lt;b&gt; &amp; "c"\nline two</field>\n'
        b'    <field name="excerpt" xsi:nil="true" />\n    <field name="note">=HYPERLINK("http://x")</field>\n'
        b'    <field name="total">-12.50</field>\n  </row>\n'
        b'  <row>\n    <field name="ID">8</field>\n    <field name="title">bell\x07 caf\xc3\xa9</field>\n'
        b'    <field name="excerpt"></field>\n    <field name="note">@SUM(A1)</field>\n'
        b'    <field name="total">+3</field>\n  </row>\n</resultset>\n'
    )
    into = tmp_path / "rows.csv"

    xml_rows_to_csv(xml, ["ID", "title", "excerpt", "note", "total"], into)

    rows = list(csv.reader(io.StringIO(into.read_text(encoding="utf-8"))))
    assert rows == [
        ["ID", "title", "excerpt", "note", "total"],
        ["7", 'a <b> & "c"\nline two', "", '\'=HYPERLINK("http://x")', "-12.50"],
        ["8", "bell? café", "", "'@SUM(A1)", "+3"],
    ]


# --- The restore page's two steps, without Docker ----------------------------------------------------------


def test_the_restore_page_asks_for_the_summary_before_a_database_restore_and_refuses_a_foreign_one(
    client, recorded_active_store, store_in_status, user_factory, django_capture_on_commit_callbacks
):
    store = recorded_active_store
    run = BackupRun.objects.create(
        store=store, kind="manual", status=RunStatus.SUCCEEDED, snapshot_id="c" * 64, finished_at=timezone.now()
    )
    url = reverse("backups:restore", args=[store.pk, run.snapshot_id])
    client.force_login(store.customer)

    # Files only: nothing in the database is replaced, so it is confirmed at once.
    files = client.get(url, {"scope": "files"}).content.decode()
    assert 'name="confirm"' in files and "Show what changed" not in files
    # The database: first the summary, and a confirmation without one is refused in words.
    database = client.get(url, {"scope": "db"}).content.decode()
    assert "Show what changed since this backup" in database and 'name="confirm"' not in database
    refused = client.post(url, {"scope": "db", "confirm": run.snapshot_id[:8]}, follow=True).content.decode()
    assert "Look at what changed since this backup first" in refused

    # Asking queues a job of the store (no Docker in the request) and the page waits for it.
    with django_capture_on_commit_callbacks(execute=False):
        client.post(url, {"scope": "db", "prepare": "1"})
    export = RestoreExport.objects.get(store=store)
    assert export.status == RunStatus.QUEUED and export.job.kind == "restore_export"
    waiting = client.get(url, {"scope": "db"}).content.decode()
    assert "Looking at what changed" in waiting and 'http-equiv="refresh"' in waiting
    assert 'name="confirm"' not in waiting

    # A summary that failed says so plainly and offers to look again, never the engine's words.
    RestoreExport.objects.filter(pk=export.pk).update(status=RunStatus.FAILED, error="ProvisioningError: tcp://x")
    failed = client.get(url, {"scope": "db"}).content.decode()
    assert "We could not read what changed since this backup" in failed and "Look again" in failed
    assert "tcp://" not in failed and 'name="confirm"' not in failed

    # Another store's summary (same customer even) is refused, and nothing is queued.
    other = store_in_status("active", customer=store.customer, domain="other-shop.test")
    foreign = RestoreExport.objects.create(
        store=other, snapshot_id=run.snapshot_id, status=RunStatus.SUCCEEDED, changed_after=timezone.now()
    )
    cache.delete_pattern("*")
    answer = client.post(url, {"scope": "db", "confirm": run.snapshot_id[:8], "export": foreign.pk}, follow=True)
    assert "Look at what changed since this backup first" in answer.content.decode()
    assert not RestoreRun.objects.exists()
    # Its download, through this store's address, is a 404 like a missing one.
    assert client.get(reverse("backups:export_download", args=[store.pk, foreign.pk])).status_code == 404


# --- A real store: snapshot, new rows, summary, export, download, restore -------------------------------


def add_rows_after_the_backup(store) -> None:
    """A post, a comment and a user, written the way WordPress writes them (UTC in the *_gmt columns)."""
    sql(
        store,
        "INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt,"
        " post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered,"
        " post_type) VALUES (1, NOW(), UTC_TIMESTAMP(), 'Body', 'Written after the backup', '', 'publish',"
        " 'written-after', '', '', NOW(), UTC_TIMESTAMP(), '', 'post')",
    )
    sql(
        store,
        "INSERT INTO wp_comments (comment_post_ID, comment_author, comment_author_email, comment_date,"
        " comment_date_gmt, comment_content, comment_type) VALUES (1, 'Ada', 'ada@example.com', NOW(),"
        " UTC_TIMESTAMP(), 'A comment after the backup', 'comment')",
    )
    sql(
        store,
        "INSERT INTO wp_users (user_login, user_pass, user_nicename, user_email, user_registered, display_name)"
        " VALUES ('newcomer', 'x', 'newcomer', 'newcomer@example.com', UTC_TIMESTAMP(), 'Newcomer')",
    )


def zip_contents(content: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


@pytest.mark.docker
def test_a_database_restore_names_exports_and_keeps_what_changed_since_the_backup_for_its_owner_only(
    live_store,  # noqa: F811 - the fixture imported above
    client,
    user_factory,
    run_backups_worker,
    django_capture_on_commit_callbacks,
):
    store, capture = live_store, django_capture_on_commit_callbacks
    snapshot = back_up(store, BackupRun.Kind.MANUAL, run_backups_worker, capture)
    add_rows_after_the_backup(store)
    page_url = reverse("backups:restore", args=[store.pk, snapshot.snapshot_id])
    client.force_login(store.customer)

    # Step 1: the page offers to look, and no confirmation yet.
    first = client.get(page_url, {"scope": "db"}).content.decode()
    assert "Show what changed since this backup" in first and 'name="confirm"' not in first
    with capture(execute=True):
        client.post(page_url, {"scope": "db", "prepare": "1"})
    running = client.get(page_url, {"scope": "db"}).content.decode()
    assert "Looking at what changed since this backup" in running and 'http-equiv="refresh"' in running
    run_backups_worker()

    export = RestoreExport.objects.get(store=store)
    assert export.status == RunStatus.SUCCEEDED, f"{export.error}\n{job_log(export.job_id)}"
    assert export.changed_after <= snapshot.started_at
    summary = client.get(page_url, {"scope": "db"}).content.decode()
    assert "1 post, 1 comment and 1 new user since this backup" in summary  # named before confirming
    assert 'name="confirm"' in summary and f'name="export" value="{export.pk}"' in summary
    assert AuditEvent.objects.filter(event="restore_export_requested").count() == 1

    # The export, downloaded by the owner: a CSV per kind of row and one SQL file, with the new rows only.
    download_url = reverse("backups:export_download", args=[store.pk, export.pk])
    response = client.get(download_url)
    assert response.status_code == 200 and response["Cache-Control"] == "private, no-store"
    files = zip_contents(b"".join(response.streaming_content))
    assert {"posts.csv", "comments.csv", "users.csv", "changes.sql"} <= set(files)
    posts = list(csv.DictReader(io.StringIO(files["posts.csv"])))
    assert [row["post_title"] for row in posts] == ["Written after the backup"]
    assert [row["comment_content"] for row in csv.DictReader(io.StringIO(files["comments.csv"]))] == [
        "A comment after the backup"
    ]
    assert [row["user_login"] for row in csv.DictReader(io.StringIO(files["users.csv"]))] == ["newcomer"]
    assert (
        "INSERT INTO `wp_posts` (`ID`," in files["changes.sql"] and "Written after the backup" in files["changes.sql"]
    )
    assert "A comment after the backup" in files["changes.sql"] and "'newcomer'" in files["changes.sql"]
    assert "Hello world" not in files["changes.sql"]  # rows from before the backup stay out
    assert AuditEvent.objects.filter(event="restore_export_downloaded", actor=store.customer).count() == 1

    # Someone else: the download, the page and the request are all 404s, and nothing is created.
    intruder = user_factory(email="intruder@example.com")
    client.force_login(intruder)
    assert client.get(download_url).status_code == 404
    assert client.get(page_url).status_code == 404
    assert client.post(page_url, {"scope": "db", "prepare": "1"}).status_code == 404
    assert RestoreExport.objects.count() == 1

    # Bad input: an unknown snapshot, and a restore with a summary that is not this snapshot's.
    client.force_login(store.customer)
    cache.delete_pattern("*")  # the requests above count against the backup rate limit
    with pytest.raises(SnapshotNotFound):
        restore_export_request(store_id=store.pk, snapshot_id="0" * 64)
    unknown = reverse("backups:restore", args=[store.pk, "0" * 64])
    assert client.post(unknown, {"scope": "db", "prepare": "1"}).status_code == 404
    with pytest.raises(ExportNotReady, match="Look at what changed"):
        restore_request(store_id=store.pk, snapshot_id="1" * 64, scope="db", export_id=export.pk)
    refused = client.post(page_url, {"scope": "db", "confirm": snapshot.snapshot_id[:8]}, follow=True)
    assert "Look at what changed since this backup first" in refused.content.decode()
    assert not RestoreRun.objects.exists()

    # Step 2: confirmed. The restore exports again once the store is offline, into the same record, so a post
    # written between the summary and the confirmation is kept too.
    sql(
        store,
        "INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt,"
        " post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered,"
        " post_type) VALUES (1, NOW(), UTC_TIMESTAMP(), 'Body', 'Written after the summary', '', 'publish',"
        " 'after-summary', '', '', NOW(), UTC_TIMESTAMP(), '', 'post')",
    )
    cache.delete_pattern("*")
    with capture(execute=True):
        confirmed = client.post(page_url, {"scope": "db", "confirm": snapshot.snapshot_id[:8], "export": export.pk})
    restore = RestoreRun.objects.get()
    assert confirmed.status_code == 302 and confirmed["Location"].endswith(f"/jobs/{restore.job_id}/")
    run_backups_worker()
    restore.refresh_from_db()
    assert restore.status == RunStatus.SUCCEEDED, f"{restore.error}\n{job_log(restore.job_id)}"
    assert "2 posts, 1 comment and 1 new user since this backup: kept for download" in job_log(restore.job_id)
    assert sql(store, "SELECT COUNT(*) FROM wp_posts WHERE post_title LIKE 'Written after%'") == "0"
    export.refresh_from_db()
    assert export.restore_run_id == restore.pk
    assert export.summary == "2 posts, 1 comment and 1 new user since this backup"
    listing = client.get(reverse("backups:list", args=[store.pk])).content.decode()
    assert download_url in listing  # still downloadable after the restore
    after = zip_contents(b"".join(client.get(download_url).streaming_content))
    titles = [row["post_title"] for row in csv.DictReader(io.StringIO(after["posts.csv"]))]
    assert titles == ["Written after the backup", "Written after the summary"]
    assert "Written after the summary" in after["changes.sql"]
    with pytest.raises(ExportNotReady, match="used by an earlier restore"):
        restore_request(store_id=store.pk, snapshot_id=snapshot.snapshot_id, scope="db", export_id=export.pk)

    # Kept for the store's backup retention, then the retention job removes the file.
    assert restore_exports_remove_expired(now=timezone.now() + timedelta(days=1)) == []
    assert restore_exports_remove_expired(now=timezone.now() + timedelta(days=31)) == [export.pk]
    assert not export_path(export).exists()
    assert client.get(download_url).status_code == 404

    # A database the application's tables are gone from (what a restore mends) has nothing to compare: the
    # restore goes ahead. Asked for without a summary (staff, a command), its own step makes the export.
    sql(store, "RENAME TABLE wp_options TO wp_options_gone")
    mended = restore_and_wait(store, snapshot.snapshot_id, RestoreRun.Scope.DATABASE, run_backups_worker, capture)
    assert "Nothing to compare with this backup: the database holds no WordPress tables" in job_log(mended.job_id)
    assert sql(store, "SHOW TABLES LIKE 'wp_options'") == "wp_options"
    assert not mended.exports.get().downloadable
