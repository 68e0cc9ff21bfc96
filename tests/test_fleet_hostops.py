"""Fleet operations (issue #20): per-host job slots with real RQ workers, the images each host holds, and each
host's figures and queue depth on the staff pages."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import connection

from accounts.services import customer_create
from provisioning import host_slots
from provisioning.models import JobLogLine, ProvisioningJob
from provisioning.services import job_enqueue
from stores.models import Host, Store
from stores.services import store_create
from tests.conftest import ROOT
from tests.host_slots_kind import SLEEP_KIND, kind_register
from tests.test_fleet import two_hosts  # noqa: F401 - the platform's engine and the second one, registered


def _host(name: str, **fields) -> Host:
    defaults = {
        "docker_url": f"tcp://{name}.invalid:2376",
        "bind_address": "10.213.0.99",
        "memory_capacity_mb": 8192,
        "cpu_capacity": 4,
    }
    return Host.objects.create(name=name, **{**defaults, **fields})


@pytest.mark.django_db
def test_a_host_has_as_many_slots_as_it_says_and_a_dead_holder_frees_its_slot(settings):
    host = _host("slots-a", job_slots=2)
    with host_slots.host_slot_hold(host_id=host.pk, slots=2) as first:
        with host_slots.host_slot_hold(host_id=host.pk, slots=2) as second:
            with host_slots.host_slot_hold(host_id=host.pk, slots=2) as third:
                assert (first, second, third) == (0, 1, False)
                assert host_slots.host_slots_in_use(host_id=host.pk, slots=2) == 2
    # Left the blocks: their sessions ended, so the slots are free again.
    assert host_slots.host_slots_in_use(host_id=host.pk, slots=2) == 0
    with host_slots.host_slot_hold(host_id=None, slots=1) as unbounded:
        assert unbounded is None  # no host yet (a provision before placement): not bounded
    settings.HOST_JOB_SLOTS = 3
    assert _host("slots-b").job_slots_effective == 3 and host.job_slots_effective == 2


# --- Real workers -------------------------------------------------------------------------------------------


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Real database writes (the worker processes must see them); what the test made is deleted after."""
    from accounts.models import User
    from billing.models import Plan
    from billing.services.plans import plan_catalogue_seed

    with django_db_blocker.unblock():
        if not connection.settings_dict["NAME"].startswith("test_"):
            pytest.fail("pytest-django set up no test database: select a database test of this module with this one")
        first_user = (User.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        first_store = (Store.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        plan_catalogue_seed()
        hosts = []

        def host(name: str, **fields) -> Host:
            hosts.append(_host(name, **fields))
            return hosts[-1]

        yield {"plan": Plan.objects.get(slug="woocommerce-commerce-core"), "host": host}
        Store.objects.filter(pk__gte=first_store).delete()
        User.objects.filter(pk__gte=first_user).delete()
        Host.objects.filter(pk__in=[h.pk for h in hosts]).delete()
        connection.close()


@pytest.fixture
def sleep_workers():
    """Starts real rqworker processes (provisioning queue, with the scheduler) that know the test_sleep kind.
    They are stopped as systemd stops them (SIGTERM): a killed worker's scheduler would keep the queue's
    scheduler lock for a while, and the next run's put-back jobs would wait for it."""
    import django_rq

    kind_register()
    django_rq.get_connection("provisioning").delete("rq:scheduler-lock:provisioning")  # a killed run's
    processes = []
    database = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shophosting.settings.test",
        "DATABASE_URL": f"mysql://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "HOST_JOB_WAIT_SECONDS": "1",
        "TEST_SLEEP_SECONDS": "4",
    }

    def start(count: int) -> None:
        for _ in range(count):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.host_slots_kind", "provisioning", "--with-scheduler"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()  # warm shutdown: the worker releases its scheduler lock
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_workers(count: int) -> None:
    from rq import Queue, Worker

    from shophosting.health import _redis_connection

    queue = Queue("provisioning", connection=_redis_connection())
    deadline = time.monotonic() + 60
    while len(Worker.all(queue=queue)) < count:
        assert time.monotonic() < deadline, f"{count} provisioning workers did not start"
        time.sleep(0.2)


def _sleep_job(committed, host: Host, n: int) -> ProvisioningJob:
    customer = customer_create(email=f"slots-{host.pk}-{n}@example.com", password="pw-123-pw-456")
    store = store_create(customer=customer, plan=committed["plan"], site_title=f"Slots {n}")
    Store.objects.filter(pk=store.pk).update(host=host)  # placed there (the kind touches no engine)
    return job_enqueue(store_id=store.pk, kind=SLEEP_KIND)


def test_a_busy_host_does_not_hold_the_workers_another_hosts_job_needs(committed, sleep_workers):
    kind_register()
    host_a = committed["host"]("slots-busy", job_slots=1)
    host_b = committed["host"]("slots-idle", job_slots=1)
    # Both workers listen before the jobs arrive: one that started seconds after the other would find A's
    # first job done, and take A's second and B's job with no wait at all.
    sleep_workers(2)
    _wait_for_workers(2)
    a1 = _sleep_job(committed, host_a, 1)
    a2 = _sleep_job(committed, host_a, 2)
    b1 = _sleep_job(committed, host_b, 3)
    jobs = ProvisioningJob.objects.filter(pk__in=[a1.pk, a2.pk, b1.pk])
    deadline = time.monotonic() + 60
    while jobs.exclude(status=ProvisioningJob.Status.SUCCEEDED).exists():
        assert time.monotonic() < deadline, list(jobs.values("pk", "status", "error"))
        time.sleep(0.2)
    a1, a2, b1 = (ProvisioningJob.objects.get(pk=job.pk) for job in (a1, a2, b1))
    # The two workers take A's two jobs at once; whichever gets A's only slot first runs, the other waits.
    first, second = sorted((a1, a2), key=lambda job: job.started_at)
    # Host B's job ran while host A's first one did, though it was queued behind A's second ...
    assert b1.started_at < first.finished_at
    # ... and A's other job waited for A's only slot, and says so.
    assert second.started_at >= first.finished_at
    assert second.host_waits >= 1 and first.host_waits == 0 and b1.host_waits == 0
    lines = JobLogLine.objects.filter(step__job=second).values_list("message", flat=True)
    assert "waiting: host slots-busy runs 1 job; trying again every 1 s" in lines
    # The put-back ran under its own RQ id, the one the recovery check (jobs_requeue_lost) looks for.
    assert second.rq_job_id == f"provisioning-job-{second.pk}-wait-{second.host_waits}"


# --- Reserved figures and queue depth per host on the staff pages --------------------------------------------


def _queries_for(client, url) -> tuple[int, str]:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    queries = [q for q in captured.captured_queries if "django_session" not in q["sql"] and "SAVEPOINT" not in q["sql"]]
    return len(queries), response.content.decode()


@pytest.mark.django_db
def test_the_staff_index_shows_each_hosts_reserved_figures_and_queue_depth_in_as_many_queries_for_60_stores_as_for_6(
    client, staff_user, woo_plan, settings
):
    from django.urls import reverse

    settings.STAFF_FIGURES_SECONDS = 0  # computed on every view: the queries are counted
    settings.HOST_JOB_SLOTS = 2
    hosts = [_host("figures-a", disk_capacity_gb=500), _host("figures-b", job_slots=1)]
    customer = customer_create(email="figures@example.com", password="pw-123-pw-456")

    def add_stores(count: int, start: int) -> list[Store]:
        return Store.objects.bulk_create(
            Store(
                customer=customer,
                plan=woo_plan,
                platform="woocommerce",
                status=Store.Status.ACTIVE,
                domain=f"fig{n}.test",
                live_domain=f"fig{n}.test",
                host=hosts[n % 2],
                port=20000 + n,
            )
            for n in range(start, start + count)
        )

    stores = add_stores(6, 0)
    Job = ProvisioningJob
    Job.objects.bulk_create(
        [
            Job(store=stores[1], kind="restart", status=Job.Status.RUNNING),
            Job(store=stores[3], kind="restart", status=Job.Status.QUEUED, host_waits=2),
            Job(store=stores[5], kind="restart", status=Job.Status.QUEUED),
            Job(store=stores[0], kind="restart", status=Job.Status.QUEUED),
        ]
    )
    client.force_login(staff_user)
    few, body = _queries_for(client, reverse("admin:index"))

    from provisioning.stacks import stack_reservation

    memory_mb, cpus = stack_reservation(Store.objects.select_related("plan").get(pk=stores[0].pk))
    assert f'<td data-host-stores="{hosts[0].pk}">3</td>' in body
    assert f"{3 * memory_mb} / 8192 MB, {8192 - 3 * memory_mb} MB free" in body
    assert f"{3 * woo_plan.disk_allowance_gb} / 500 GB, {500 - 3 * woo_plan.disk_allowance_gb} GB free" in body
    assert f"{float(3 * cpus)} / 4.00, {round(4 - float(3 * cpus), 2)} free" in body
    depth = {row.host_name: row for row in client.get(reverse("admin:index")).context["dashboard"]["host_jobs"]}
    assert (depth["figures-b"].running, depth["figures-b"].queued, depth["figures-b"].waiting) == (1, 2, 1)
    assert (depth["figures-b"].slots, depth["figures-a"].slots) == (1, 2)
    assert (depth["figures-a"].running, depth["figures-a"].queued, depth["figures-a"].waiting) == (0, 1, 0)

    add_stores(54, 6)
    many, body = _queries_for(client, reverse("admin:index"))
    assert f'<td data-host-stores="{hosts[0].pk}">30</td>' in body
    assert many == few

    # The hosts list: stores, jobs now (running / slots, queued, waiting) and images, in the same few queries.
    few_hosts, page = _queries_for(client, reverse("admin:stores_host_changelist"))
    assert "1 / 1 running, 2 queued (1 waiting for a slot)" in page
    for n in range(8):
        _host(f"figures-more-{n}")
    more_hosts, page = _queries_for(client, reverse("admin:stores_host_changelist"))
    assert more_hosts == few_hosts and "figures-more-7" in page


# --- The images each host holds ------------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.django_db
def test_the_platform_records_which_images_each_host_holds_and_a_new_store_gets_those_it_lacks(
    two_hosts,  # noqa: F811
    second_engine,
    client,
    staff_user,
    settings,
):
    from django.urls import reverse

    from provisioning import docker_client
    from provisioning.host_images import host_images_ensure, hosts_images_refresh, hosts_images_state
    from provisioning.models import HostImage

    local, remote = two_hosts
    Host.objects.filter(pk=local.pk).update(docker_url=settings.DOCKER_HOST)  # the platform's engine
    cache_image = settings.STORE_IMAGES["woocommerce"]["cache"]
    web_image = settings.STORE_IMAGES["woocommerce"]["web"]
    docker_client.client(remote.engine).images.remove(cache_image)  # the tag only: its layers stay

    # The platform round: one image list per host whose engine answered.
    assert sorted(hosts_images_refresh(host_ids=[local.pk, remote.pk])) == sorted([local.pk, remote.pk])
    recorded = dict(HostImage.objects.filter(host=remote).values_list("reference", "image_id"))
    assert recorded[web_image] == docker_client.image_id(tag=web_image) and cache_image not in recorded
    state = hosts_images_state([remote])[remote.pk]
    assert not state.current and cache_image in state.missing and web_image not in state.missing

    client.force_login(staff_user)
    listing = client.get(reverse("admin:stores_host_changelist")).content.decode()
    assert f"no: missing {cache_image}" in listing or f"missing {cache_image}," in listing
    page = client.get(reverse("admin:stores_host_change", args=[remote.pk])).content.decode()
    assert web_image in page and "Images on this host" in page

    # What the provision's allocate step does before any container: copy what the host lacks, and record it.
    lines = []
    assert host_images_ensure(host=remote, images=[cache_image, web_image], log=lines.append) == [cache_image]
    assert lines[0] == f"copied to host {remote.name}: {cache_image}"
    assert docker_client.image_id(tag=cache_image, base_url=remote.engine) == docker_client.image_id(tag=cache_image)
    assert HostImage.objects.filter(host=remote, reference=cache_image).exists()
    assert host_images_ensure(host=remote, images=[cache_image], log=lines.append) == []  # there now
    assert host_images_ensure(host=local, images=[cache_image], log=lines.append) == []  # the platform's own


# --- The host check in a worker ------------------------------------------------------------------------------


def _drain_default_queue() -> None:
    import django_rq
    from rq import SimpleWorker

    django_rq.get_worker("default", worker_class=SimpleWorker).work(burst=True)


@pytest.mark.django_db
def test_checking_a_saved_host_again_runs_in_a_worker_and_keeps_the_failure_with_its_time(client, staff_user):
    from django.urls import reverse

    host = _host("check-gone", docker_url="unix:///nowhere/docker.sock", check_report="Docker 20.10 (the last pass)")
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:stores_host_changelist"), {"action": "check_selected", "_selected_action": [host.pk]}
    )
    assert response.status_code == 302
    host.refresh_from_db()
    assert host.check_error == ""  # queued, not run in the request
    _drain_default_queue()
    host.refresh_from_db()
    assert "the engine at unix:///nowhere/docker.sock cannot be used" in host.check_error
    assert host.check_report == "Docker 20.10 (the last pass)"  # what the last passing check found stays
    page = client.get(reverse("admin:stores_host_change", args=[host.pk])).content.decode()
    assert "cannot be used" in page


@pytest.mark.docker
@pytest.mark.django_db
def test_a_passing_check_in_the_worker_records_what_it_found_and_the_hosts_images(
    two_hosts,  # noqa: F811
    second_engine,
):
    from provisioning.hosts import host_check_enqueue
    from provisioning.models import HostImage
    from stores.services import host_check_failure_record

    _, remote = two_hosts
    host_check_failure_record(host_id=remote.pk, error="an old failure", at=remote.checked_at)
    HostImage.objects.filter(host=remote).delete()
    host_check_enqueue(host_id=remote.pk)
    _drain_default_queue()
    remote.refresh_from_db()
    assert remote.check_error == "" and f"{second_engine.address} answers from the platform" in remote.check_report
    assert HostImage.objects.filter(host=remote).exists()


@pytest.mark.django_db
def test_staff_set_a_hosts_job_slots_in_the_admin_and_zero_is_refused_with_a_clear_error(client, staff_user):
    from django.urls import reverse

    host = _host("slots-form")
    form = {
        "name": host.name,
        "docker_url": host.docker_url,
        "bind_address": host.bind_address,
        "port_range_start": host.port_range_start,
        "port_range_end": host.port_range_end,
        "memory_capacity_mb": host.memory_capacity_mb,
        "cpu_capacity": host.cpu_capacity,
        "active": "on",
    }
    client.force_login(staff_user)
    url = reverse("admin:stores_host_change", args=[host.pk])
    refused = client.post(url, {**form, "job_slots": "0"})
    assert refused.status_code == 200
    assert "Ensure this value is greater than or equal to 1." in refused.content.decode()
    host.refresh_from_db()
    assert host.job_slots is None
    # Nothing the host check looks at changed, so none runs (this host's engine does not exist).
    assert client.post(url, {**form, "job_slots": "3"}).status_code == 302
    host.refresh_from_db()
    assert host.job_slots == 3 and host.job_slots_effective == 3


@pytest.mark.django_db
def test_a_rollout_reads_which_hosts_hold_its_image_from_the_records_before_asking_an_engine(settings):
    from django.core.exceptions import ValidationError
    from django.utils import timezone

    from provisioning.docker_client import ImageTagged
    from provisioning.host_images import host_images_record
    from provisioning.rollouts import rollout_image_check

    recorded, unrecorded = _host("rollout-recorded"), _host("rollout-unrecorded")  # neither engine exists
    # A version of the web image that no store runs yet: its repository is tracked, so it is recorded.
    new_web = settings.STORE_IMAGES["woocommerce"]["web"].rpartition(":")[0] + ":9.9-rollout"
    host_images_record(
        host_id=recorded.pk,
        images=[
            ImageTagged(reference=new_web, image_id="sha256:" + "a" * 64, created=int(timezone.now().timestamp())),
            ImageTagged(reference="someone/else:1", image_id="sha256:" + "b" * 64, created=0),  # not a store image
        ],
    )
    assert list(recorded.images.values_list("reference", flat=True)) == [new_web]
    rollout_image_check(image=new_web, hosts=[recorded])  # no engine asked: it would not answer
    with pytest.raises(ValidationError, match="The engine of rollout-unrecorded does not answer"):
        rollout_image_check(image=new_web, hosts=[recorded, unrecorded])


@pytest.mark.django_db
def test_recording_a_hosts_images_again_keeps_what_did_not_change_and_follows_what_did(settings):
    from provisioning.docker_client import ImageTagged
    from provisioning.host_images import host_images_record
    from provisioning.models import HostImage

    host = _host("images-again")
    cache, web = settings.STORE_IMAGES["woocommerce"]["cache"], settings.STORE_IMAGES["woocommerce"]["web"]
    host_images_record(
        host_id=host.pk,
        images=[ImageTagged(cache, "sha256:" + "1" * 64, 1_700_000_000), ImageTagged(web, "sha256:" + "2" * 64, 0)],
    )
    first = {row.reference: row for row in HostImage.objects.filter(host=host)}
    assert first[cache].created.timestamp() == 1_700_000_000 and first[web].created is None
    # Seen again: the web image was rebuilt (a new id), the cache image is the same, nothing else is there.
    host_images_record(
        host_id=host.pk,
        images=[ImageTagged(cache, "sha256:" + "1" * 64, 1_700_000_000), ImageTagged(web, "sha256:" + "3" * 64, 0)],
    )
    again = {row.reference: row for row in HostImage.objects.filter(host=host)}
    assert again[web].image_id == "sha256:" + "3" * 64 and again[cache].pk == first[cache].pk
    assert again[cache].recorded_at >= first[cache].recorded_at
    host_images_record(host_id=host.pk, images=[ImageTagged(web, "sha256:" + "3" * 64, 0)])  # the cache image went
    assert list(HostImage.objects.filter(host=host).values_list("reference", flat=True)) == [web]
