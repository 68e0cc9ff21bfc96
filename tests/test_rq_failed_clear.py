"""Clearing failed RQ jobs from the staff console also drops ids whose job hash is already gone (expired, or
deleted by a worker), instead of failing with NoSuchJobError and leaving the registry as it was."""

import time

import django_rq
from rq.registry import FailedJobRegistry

from shophosting.core.queues import failed_jobs_clear


def test_a_failed_registry_entry_without_its_job_is_cleared_too():
    queue = django_rq.get_queue("provisioning")
    registry = FailedJobRegistry(queue=queue)
    registry.connection.zadd(registry.key, {"provisioning-job-ghost": time.time() + 3600})
    assert "provisioning-job-ghost" in registry.get_job_ids()
    assert failed_jobs_clear() >= 1
    assert "provisioning-job-ghost" not in registry.get_job_ids()


def test_queue_stats_count_each_queue_and_registry_in_one_read_without_cleaning_up():
    """The staff index and /metrics read these on every view: one pipelined read, figures equal to RQ's own."""
    from shophosting.core.queues import queue_stats

    queue = django_rq.get_queue("backups")
    queue.empty()
    for registry in (queue.started_job_registry, queue.scheduled_job_registry, queue.failed_job_registry):
        registry.connection.delete(registry.key)
    queue.enqueue("tests.no_such_module.no_such_function")
    queue.enqueue("tests.no_such_module.no_such_function")
    queue.failed_job_registry.connection.zadd(queue.failed_job_registry.key, {"backups-failed-1": time.time() + 60})
    # Expired already: RQ's cleanup would drop it, a page view leaves it to the workers' maintenance.
    queue.started_job_registry.connection.zadd(queue.started_job_registry.key, {"backups-started-1": 1})

    stats = {row.name: row for row in queue_stats()}

    assert list(stats) == list(django_rq.settings.QUEUES)
    backups = stats["backups"]
    assert (backups.queued, backups.started, backups.scheduled, backups.failed) == (2, 1, 0, 1)
    assert queue.started_job_registry.connection.zscore(queue.started_job_registry.key, "backups-started-1") == 1
    queue.empty()
    for registry in (queue.started_job_registry, queue.failed_job_registry):
        registry.connection.delete(registry.key)
