"""What the staff pages read from RQ (queue lengths, failed jobs, worker heartbeats) and the one thing they
change there: clearing failed jobs. Enqueuing stays with the services that own each job; they enqueue
committed work through `enqueue_recorded`."""

import functools
import logging
import time
from dataclasses import dataclass

import django_rq
from django.conf import settings
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

logger = logging.getLogger(__name__)

# RQ statuses in which a job will still run, or runs now.
PENDING_STATUSES = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED)


@dataclass(frozen=True)
class QueueStats:
    name: str
    queued: int
    started: int
    scheduled: int
    failed: int


@dataclass(frozen=True)
class WorkerState:
    name: str
    queues: list[str]
    state: str
    heartbeat_age_seconds: float | None
    alive: bool


def queue_stats() -> list[QueueStats]:
    """Each queue's length and registry sizes, read in one pipelined round trip on one connection (all queues
    share REDIS_URL). RQ's own `count` properties would open a connection per queue (django-rq builds a new
    client per call) and clean each registry up first: writes that a page view should not make, and that the
    workers' maintenance already does. So a job whose worker died may be counted as started until then."""
    names = list(settings.RQ_QUEUES)
    connection = _stats_connection(names[0])
    queues = [django_rq.get_queue(name, connection=connection) for name in names]
    with connection.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(queue.key)
            pipe.zcard(queue.started_job_registry.key)
            pipe.zcard(queue.scheduled_job_registry.key)
            pipe.zcard(queue.failed_job_registry.key)
        counts = pipe.execute()
    return [
        QueueStats(name=name, queued=queued, started=started, scheduled=scheduled, failed=failed)
        for name, (queued, started, scheduled, failed) in zip(
            names, (counts[i : i + 4] for i in range(0, len(counts), 4)), strict=True
        )
    ]


def _stats_connection(queue_name: str):
    """One client (and its connection pool) per process and connection settings for the reads above:
    django-rq builds a new client, and so a new TCP connection, on every call. redis-py's pool is thread-safe
    and starts afresh after a fork."""
    return _client_for(repr(sorted(settings.RQ_QUEUES[queue_name].items())), queue_name)


@functools.cache
def _client_for(config: str, queue_name: str):
    return django_rq.get_connection(queue_name)


def workers(*, connection=None) -> list[WorkerState]:
    """Every registered worker; alive means its heartbeat is within WORKER_HEARTBEAT_MAX_AGE."""
    now = time.time()
    found = []
    for worker in Worker.all(connection=connection or django_rq.get_connection("default")):
        age = now - worker.last_heartbeat.timestamp() if worker.last_heartbeat else None
        found.append(
            WorkerState(
                name=worker.name,
                queues=worker.queue_names(),
                state=str(worker.get_state()),
                heartbeat_age_seconds=round(age, 1) if age is not None else None,
                alive=age is not None and age <= settings.WORKER_HEARTBEAT_MAX_AGE,
            )
        )
    return sorted(found, key=lambda w: w.name)


def failed_jobs_clear() -> int:
    """Delete every failed RQ job of every queue (the ProvisioningJob rows keep their own failure record)."""
    cleared = 0
    for name in settings.RQ_QUEUES:
        queue = django_rq.get_queue(name)
        registry = FailedJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            try:
                registry.remove(job_id, delete_job=True)
            except NoSuchJobError:  # the job's hash expired or went before its id left the registry
                registry.remove(job_id)
            cleared += 1
    return cleared


def enqueue_recorded(*, queue: str, function, args: tuple, job_id: str, job_timeout: int) -> str | None:
    """Enqueue work whose row is already committed; the RQ job id, or None when Redis did not take it.

    The committed row is the record, and each owner's recovery check (provisioning's `jobs_requeue_lost`,
    backups' `runs_recover`) enqueues a recorded job that RQ lacks within a minute. So a Redis outage must
    not turn the request that committed the work into a 500 (a customer would press again, Stripe would
    redeliver) for work that will run anyway."""
    try:
        return django_rq.get_queue(queue).enqueue(function, *args, job_id=job_id, job_timeout=job_timeout).id
    except RedisError as exc:
        logger.warning("Redis did not take %s (%s); the recovery check enqueues it within a minute", job_id, exc)
        return None


def rq_job_pending(*, queue: str, job_id: str) -> bool:
    """Whether RQ still holds `job_id` to run, or runs it now. False when the enqueue never happened (the
    process died between the commit and the enqueue), Redis lost it, or it ended without running to the end;
    the services that own each kind of run then enqueue it again (their claim makes that harmless)."""
    try:
        status = Job.fetch(job_id, connection=django_rq.get_queue(queue).connection).get_status()
    except (NoSuchJobError, InvalidJobOperation):
        return False
    return status in PENDING_STATUSES
