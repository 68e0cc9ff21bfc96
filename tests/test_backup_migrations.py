"""The move of backups onto the job engine ends what the old workers can no longer run."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from backups.models import BackupRun, RestoreRun, RunStatus

# Migrating back past later migrations that create tables is DDL, which MariaDB cannot roll back: Django
# refuses it inside a test's transaction. So this test commits, and the data migrations' rows its closing flush
# empties are put back afterwards.
pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("_data_migrations_put_back"),
]

BEFORE = [("backups", "0005_runs_are_jobs")]


def migrate(targets=None) -> None:
    """To `targets`, or forward to the latest migrations (where every other test expects the database)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def test_store_runs_left_under_way_without_a_job_end_failed_and_platform_runs_are_left_alone(recorded_active_store):
    migrate(BEFORE)
    queued = BackupRun.objects.create(store=recorded_active_store, kind="scheduled")
    running = BackupRun.objects.create(store=recorded_active_store, kind="manual", status=RunStatus.RUNNING)
    restore = RestoreRun.objects.create(store=recorded_active_store, snapshot_id="a" * 64, scope="db")
    platform = BackupRun.objects.create(kind="system")  # not a store operation: its own worker still runs it
    done = BackupRun.objects.create(store=recorded_active_store, kind="manual", status=RunStatus.SUCCEEDED)

    migrate()  # through 0006_runs_before_the_engine_end

    for run in (queued, running, restore):
        run.refresh_from_db()
        assert run.status == RunStatus.FAILED and "upgrade to the job engine" in run.error
        assert run.events.get().new_status == RunStatus.FAILED
    assert BackupRun.objects.get(pk=platform.pk).status == RunStatus.QUEUED
    assert BackupRun.objects.get(pk=done.pk).status == RunStatus.SUCCEEDED
