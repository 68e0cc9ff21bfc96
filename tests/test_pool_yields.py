"""The warm pool's builds give way to paying customers (provisioning.kinds.JobKind.orders_ahead): while a
new store is being set up, a pool build goes back on its queue instead of taking the CPU that store's job needs.
Real RQ (a SimpleWorker on the pool queue, its scheduled registry in Redis) and the real engine code; the host's
engine never answers, so the build, once it may start, really runs and fails at its first engine call."""

import django_rq
import pytest
from rq import SimpleWorker

from provisioning.exceptions import DockerUnavailable
from provisioning.models import JobLogLine, PoolStack, PoolTarget, ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.pool import pool_refill
from provisioning.services import job_execute
from stores.models import Host, Store
from stores.services import store_create
from tests.plugins.factories import UNREACHABLE_ENGINE

pytestmark = pytest.mark.django_db
Job = ProvisioningJob


@pytest.fixture(autouse=True)
def _put_backs_removed():
    """The builds' put-backs wait in the pool queue's scheduled registry in Redis, which outlives this test's
    rows: removed afterwards, so no later worker with a scheduler runs them for jobs that no longer exist."""
    yield
    from rq.job import Job as RQJob

    registry = django_rq.get_queue("pool").scheduled_job_registry
    for build in Job.objects.filter(kind="pool_fill"):
        for job_id in registry.get_job_ids():
            if job_id.startswith(f"provisioning-job-{build.pk}-wait-"):
                registry.remove(job_id)
                RQJob(job_id, connection=registry.connection).delete()


def _host(name: str, ports: int) -> Host:
    return Host.objects.create(
        name=name,
        docker_url=UNREACHABLE_ENGINE,
        memory_capacity_mb=8192,
        cpu_capacity=4,
        port_range_start=ports,
        port_range_end=ports + 99,
    )


def _builds(woo_plan, capture, ready: int) -> list[ProvisioningJob]:
    """`ready` pool builds queued by a refill, on this test's only active host."""
    PoolTarget.objects.update_or_create(
        platform=woo_plan.platform,
        memory_mb=woo_plan.memory_mb,
        cpus=woo_plan.cpu_limit,
        defaults={"ready_target": ready},
    )
    with capture(execute=True):
        assert pool_refill()["built"] == ready
    return list(Job.objects.filter(kind="pool_fill", status=Job.Status.QUEUED).order_by("pk"))


def test_a_pool_build_waits_while_a_paying_customers_store_is_set_up_then_runs(
    woo_plan, user_factory, settings, django_capture_on_commit_callbacks
):
    settings.ORDERS_FIRST_WAIT_SECONDS = 7
    Host.objects.update(active=False)  # this test's host only
    _host("pool-yield", 29700)
    [build] = _builds(woo_plan, django_capture_on_commit_callbacks, ready=1)
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


def test_a_build_gives_way_only_to_orders_that_may_land_on_its_host_and_only_so_many_times(
    woo_plan, user_factory, settings, django_capture_on_commit_callbacks
):
    """An order placed on another host takes none of this host's CPU; and a steady stream of orders must not
    keep the pool empty for ever (ORDERS_FIRST_MAX_WAITS)."""
    settings.ORDERS_FIRST_MAX_WAITS = 2
    Host.objects.update(active=False)
    _host("pool-yield", 29700)
    elsewhere = _host("elsewhere", 29800)
    Host.objects.filter(pk=elsewhere.pk).update(active=False)  # no pool there: this host's builds only
    first, second = _builds(woo_plan, django_capture_on_commit_callbacks, ready=2)
    store = store_create(customer=user_factory(), plan=woo_plan, domain="paying.test", site_title="Paying")
    with django_capture_on_commit_callbacks(execute=True):
        store_order_paid(store_id=store.pk)

    Store.objects.filter(pk=store.pk).update(host=elsewhere, port=29800)  # being set up on the other host
    with pytest.raises(DockerUnavailable):  # it ran: the engine does not answer
        job_execute(job_id=first.pk)
    first.refresh_from_db()
    assert first.status == Job.Status.FAILED and first.host_waits == 0

    Store.objects.filter(pk=store.pk).update(host=None, port=None)  # not placed yet: it may land here
    for waits in (1, 2):
        job_execute(job_id=second.pk)
        second.refresh_from_db()
        assert (second.status, second.host_waits) == (Job.Status.QUEUED, waits)
    with pytest.raises(DockerUnavailable):  # given way twice: it runs now, the order notwithstanding
        job_execute(job_id=second.pk)
    second.refresh_from_db()
    assert second.status == Job.Status.FAILED and second.host_waits == 2
