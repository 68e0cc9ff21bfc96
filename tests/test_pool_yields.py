"""The warm pool's builds give way to paying customers (provisioning.kinds.JobKind.yields_to_orders): while a
new store is being set up, a pool build goes back on its queue instead of taking the CPU that store's job needs.
Real RQ (a SimpleWorker on the pool queue, its scheduled registry in Redis) and the real engine code; the host's
engine never answers, so the build, once it may start, really runs and fails at its first engine call."""

import django_rq
import pytest
from rq import SimpleWorker

from provisioning.models import JobLogLine, PoolStack, PoolTarget, ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.pool import pool_refill
from stores.models import Host
from stores.services import store_create
from tests.plugins.factories import UNREACHABLE_ENGINE

pytestmark = pytest.mark.django_db
Job = ProvisioningJob


def test_a_pool_build_waits_while_a_paying_customers_store_is_set_up_then_runs(
    woo_plan, user_factory, settings, django_capture_on_commit_callbacks
):
    settings.ORDERS_FIRST_WAIT_SECONDS = 7
    Host.objects.update(active=False)  # this test's host only
    Host.objects.create(
        name="pool-yield",
        docker_url=UNREACHABLE_ENGINE,
        memory_capacity_mb=8192,
        cpu_capacity=4,
        port_range_start=29700,
        port_range_end=29799,
    )
    PoolTarget.objects.update_or_create(
        platform=woo_plan.platform,
        memory_mb=woo_plan.memory_mb,
        cpus=woo_plan.cpu_limit,
        defaults={"ready_target": 1},
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert pool_refill()["built"] == 1
    [build] = Job.objects.filter(kind="pool_fill", status=Job.Status.QUEUED)
    store = store_create(customer=user_factory(), plan=woo_plan, domain="paying.test", site_title="Paying")
    with django_capture_on_commit_callbacks(execute=True):
        order = store_order_paid(store_id=store.pk)  # queued on the provisioning queue, not run here

    pool_queue = django_rq.get_queue("pool")
    django_rq.get_worker("pool", worker_class=SimpleWorker).work(burst=True)
    build.refresh_from_db()
    assert (build.status, build.started_at, build.host_waits) == (Job.Status.QUEUED, None, 1)
    assert JobLogLine.objects.filter(step__job=build).values_list("message", flat=True).get() == (
        "waiting: new stores of paying customers go first (1 being set up); trying again every 7 s"
    )
    assert build.rq_job_id == f"provisioning-job-{build.pk}-wait-1"
    assert build.rq_job_id in pool_queue.scheduled_job_registry.get_job_ids()
    assert PoolStack.objects.get(store=build.store).state == PoolStack.State.BUILDING

    # The order is done (here its job fails: the only host's engine does not answer) ...
    with django_capture_on_commit_callbacks(execute=True):
        django_rq.get_worker("provisioning", worker_class=SimpleWorker).work(burst=True)
    order.refresh_from_db()
    assert order.status == Job.Status.FAILED
    # ... and the build's put-back, due, runs: it starts (and fails at the engine, as the order did).
    pool_queue.scheduled_job_registry.remove(build.rq_job_id)
    pool_queue.enqueue("provisioning.jobs.provisioning_job_run", build.pk, job_id=build.rq_job_id)
    with django_capture_on_commit_callbacks(execute=True):
        django_rq.get_worker("pool", worker_class=SimpleWorker).work(burst=True)
    build.refresh_from_db()
    assert build.status == Job.Status.FAILED and build.started_at is not None
    assert build.host_waits == 1
