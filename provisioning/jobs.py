"""RQ entry points: ids in, one service call, nothing else."""

from django_rq import job


@job("provisioning", timeout=15 * 60)
def provisioning_job_run(job_id: int) -> None:
    from provisioning.services import job_execute  # lazy: services import this module

    job_execute(job_id=job_id)


@job("default", timeout=60)
def provisioning_jobs_reap() -> None:
    from provisioning.services import jobs_reap_stale

    jobs_reap_stale()


@job("default", timeout=60)
def provisioning_jobs_requeue() -> None:
    from provisioning.services import jobs_requeue_lost

    jobs_requeue_lost()


@job("provisioning", timeout=5 * 60)
def store_tls_retry(store_id: int) -> None:
    from provisioning.services import store_tls_ensure

    store_tls_ensure(store_id=store_id)


@job("default", timeout=60)
def stores_tls_retry_lost() -> None:
    from provisioning.services import stores_tls_retry_lost

    stores_tls_retry_lost()


@job("provisioning", timeout=30 * 60)
def stores_tls_renew() -> None:
    from provisioning.services import stores_tls_renew_due

    stores_tls_renew_due()


@job("default", timeout=15 * 60)
def stores_names_check() -> None:
    from provisioning.domains import stores_names_check_due

    stores_names_check_due()


@job("default", timeout=2 * 60)
def store_names_check(store_id: int) -> None:
    from provisioning.domains import store_names_check

    store_names_check(store_id=store_id)


def stores_disk_measure():
    from provisioning.services import stores_disk_measure

    return stores_disk_measure()


def stores_usage_sample():
    from provisioning.services import stores_usage_sample

    return stores_usage_sample()


@job("default", timeout=60)
def provisioning_rollouts_advance() -> None:
    from provisioning.rollouts import rollouts_advance

    rollouts_advance()


@job("default", timeout=60)
def provisioning_evacuations_advance() -> None:
    from provisioning.moves import evacuations_advance

    evacuations_advance()


@job("default", timeout=120)
def store_checks_run(store_id: int) -> None:
    from provisioning.care.services import store_checks_run

    store_checks_run(store_id=store_id)


@job("default", timeout=60)
def stores_checks_enqueue_due() -> None:
    from provisioning.care.services import stores_checks_enqueue_due

    stores_checks_enqueue_due()


@job("default", timeout=30 * 60)
def check_history_downsample() -> None:
    from provisioning.care.services import check_history_downsample

    check_history_downsample()


@job("pool", timeout=60)
def pool_refill() -> None:
    from provisioning.pool import pool_refill

    pool_refill()


@job("default", timeout=10 * 60)
def hosts_fence_check() -> None:
    from provisioning.hosts import hosts_fence_check

    hosts_fence_check()


@job("default", timeout=5 * 60)
def host_check_run(host_id: int) -> None:
    from provisioning.hosts import host_check_run

    host_check_run(host_id=host_id)
