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
