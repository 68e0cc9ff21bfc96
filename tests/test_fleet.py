"""Two real engines: the platform's own and a second one in a network namespace, reached over TCP with TLS
client certificates (tests/plugins/engines.py). Hosts, their registration check, and placement over both."""

import dataclasses
import html
from pathlib import Path

import pytest
from django.urls import reverse

from provisioning import docker_client
from stores.exceptions import NoCapacity
from stores.models import Host
from stores.services import host_transition, store_place
from tests.plugins import engines


@pytest.mark.docker
def test_the_second_engine_answers_over_tls_only_with_the_client_certificate_and_holds_the_store_images(
    second_engine, settings
):
    facts = docker_client.engine_facts(base_url=second_engine.engine())
    assert facts.server_version and facts.storage_driver
    for image in set(settings.STORE_IMAGES["woocommerce"].values()):
        assert docker_client.image_id(tag=image, base_url=second_engine.engine()) == docker_client.image_id(tag=image)

    # The same address without a client certificate, or with one another CA signed, is refused.
    with pytest.raises(docker_client.DockerUnavailable):
        docker_client.engine_facts(base_url=f"tcp://{second_engine.address}:{engines.PORT}")
    stranger = engines.tls_files_make(address=second_engine.address, common_name="another CA")
    wrong_client = dataclasses.replace(
        second_engine.engine(), cert_pem=stranger.client_cert, key_pem=stranger.client_key
    )
    with pytest.raises(docker_client.DockerUnavailable):
        docker_client.engine_facts(base_url=wrong_client)
    # Nor does the platform trust an engine whose certificate its CA did not sign.
    wrong_ca = dataclasses.replace(second_engine.engine(), ca_pem=stranger.ca)
    with pytest.raises(docker_client.DockerUnavailable):
        docker_client.engine_facts(base_url=wrong_ca)


# --- Registering a host -----------------------------------------------------------------------------------


def _host_form(second_engine, **overrides) -> dict:
    form = {
        "name": "engine2",
        "docker_url": second_engine.url,
        "bind_address": second_engine.address,
        "port_range_start": "21000",
        "port_range_end": "21099",
        "memory_capacity_mb": "20480",
        "cpu_capacity": "32",
        "disk_capacity_gb": "",
        "active": "on",
        "tls_ca": second_engine.tls.ca,
        "tls_cert": second_engine.tls.client_cert,
        "tls_key": second_engine.tls.client_key,
    }
    return {**form, **overrides}


@pytest.mark.docker
@pytest.mark.django_db
def test_registering_a_remote_host_in_the_admin_checks_its_engine_and_address_and_keeps_its_key_encrypted(
    client, staff_user, second_engine, settings
):
    client.force_login(staff_user)
    response = client.post(reverse("admin:stores_host_add"), _host_form(second_engine))
    assert response.status_code == 302, response.content.decode()[-3000:]

    host = Host.objects.get(name="engine2")
    assert host.engine == second_engine.engine()  # the certificates come back as given
    assert "PRIVATE KEY" not in host.tls_encrypted and second_engine.tls.client_cert not in host.tls_encrypted
    assert host.engine_version.startswith("20.10") and host.storage_driver == "overlay2"
    assert "memory, CPU and process limits" in host.cgroup_limits
    assert host.memory_total_mb > 512 and host.cpus_total >= 1
    assert 0 < host.disk_free_bytes <= host.disk_total_bytes
    assert f"{second_engine.address} answers from the platform" in host.check_report
    assert host.checked_at is not None and host.status == Host.Status.READY
    # The probe is gone from the engine.
    assert docker_client.labelled_objects(label="shophosting.host-check=1", base_url=host.engine)["containers"] == []

    page = client.get(reverse("admin:stores_host_change", args=[host.pk])).content.decode()
    assert host.check_report.split(";")[0] in page and "client certificates stored (encrypted)" in page
    assert second_engine.tls.client_key not in page  # write-only

    # An edit that changes neither the engine, the address nor the certificates saves without a check.
    checked_at = host.checked_at
    edit = _host_form(second_engine, memory_capacity_mb="10240", tls_ca="", tls_cert="", tls_key="")
    assert client.post(reverse("admin:stores_host_change", args=[host.pk]), edit).status_code == 302
    host.refresh_from_db()
    assert host.memory_capacity_mb == 10240 and host.checked_at == checked_at
    assert host.engine == second_engine.engine()  # kept


@pytest.mark.docker
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"tls_ca": "stranger"}, "certificate verify failed"),  # the engine's certificate is not the CA's
        ({"tls_cert": "stranger", "tls_key": "stranger"}, "does not answer"),  # the engine refuses our certificate
        ({"docker_url": f"tcp://{engines.ADDRESS}:2399"}, "does not answer"),
        ({"bind_address": "10.213.0.1"}, "cannot assign requested address"),  # not the host's own address
        ({"tls_key": ""}, "Give the CA certificate, the client certificate and the client key together."),
        ({"tls_cert": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"}, "This is not a PEM certificate"),
    ],
)
def test_a_host_failing_its_check_is_not_saved_and_the_admin_says_why(
    client, staff_user, second_engine, overrides, expected
):
    stranger = engines.tls_files_make(address=engines.ADDRESS, common_name="another CA")
    replace = {"tls_ca": stranger.ca, "tls_cert": stranger.client_cert, "tls_key": stranger.client_key}
    overrides = {key: replace[key] if value == "stranger" else value for key, value in overrides.items()}
    hosts = Host.objects.count()
    client.force_login(staff_user)
    response = client.post(reverse("admin:stores_host_add"), _host_form(second_engine, **overrides))
    assert response.status_code == 200
    errors = " ".join(str(e) for e in response.context["adminform"].form.errors.values())
    assert expected in html.unescape(errors), errors
    assert Host.objects.count() == hosts
    assert (
        docker_client.labelled_objects(label="shophosting.host-check=1", base_url=second_engine.engine())["containers"]
        == []
    )


# --- Placement ---------------------------------------------------------------------------------------------


def _hosts(*names: str, memory_mb: int = 8192, **fields) -> list[Host]:
    Host.objects.update(active=False)  # the platform's "local" host takes no part
    return [
        Host.objects.create(
            name=name,
            docker_url=f"tcp://{name}.invalid:2376",
            bind_address="127.0.0.1",
            port_range_start=22000 + 100 * index,
            port_range_end=22099 + 100 * index,
            memory_capacity_mb=memory_mb,
            cpu_capacity=16,
            **fields,
        )
        for index, name in enumerate(names)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(("policy", "expected"), [("spread", ["a", "b", "a"]), ("pack", ["a", "a", "b"])])
def test_the_placement_policy_spreads_or_packs(store_in_status, settings, policy, expected):
    settings.HOST_PLACEMENT_POLICY = policy
    _hosts("a", "b", memory_mb=4096)  # one WooCommerce stack reserves 1 GB + 768 MB: two fit on a host
    placed = [store_place(store_id=store_in_status("queued").pk).host.name for _ in expected]
    assert placed == expected


@pytest.mark.django_db
def test_the_placement_policy_is_set_per_platform(store_in_status, settings):
    from billing.models import Plan

    settings.HOST_PLACEMENT_POLICY = "pack"
    settings.HOST_PLACEMENT_POLICY_BY_PLATFORM = {"magento": "spread"}
    _hosts("a", "b", memory_mb=65536)
    magento = Plan.objects.get(slug="magento-commerce-core")
    woo = [store_place(store_id=store_in_status("queued").pk).host.name for _ in range(2)]
    assert woo == ["a", "a"]  # packed: the first host until it is full
    # Spread for Magento: the host with the most free memory, though the first still has room.
    assert store_place(store_id=store_in_status("queued", plan=magento).pk).host.name == "b"
    settings.HOST_PLACEMENT_POLICY_BY_PLATFORM = {}
    assert store_place(store_id=store_in_status("queued", plan=magento).pk).host.name == "a"


@pytest.mark.django_db
def test_a_draining_host_a_host_not_accepting_stores_and_a_full_disk_get_no_new_store(
    store_in_status, settings, woo_plan, staff_user
):
    settings.HOST_PLACEMENT_POLICY = "spread"
    draining, closed, small_disk, open_host = _hosts("draining", "closed", "small-disk", "open")
    draining.memory_capacity_mb = 20480  # the most room: spread would pick it first
    draining.save()
    Host.objects.filter(pk=closed.pk).update(active=False)
    Host.objects.filter(pk=small_disk.pk).update(disk_capacity_gb=woo_plan.disk_allowance_gb - 1)
    host_transition(host_id=draining.pk, to=Host.Status.DRAINING, actor=staff_user, note="moving to new hardware")
    assert draining.events.get().new_status == Host.Status.DRAINING

    assert {store_place(store_id=store_in_status("queued").pk).host.name for _ in range(3)} == {"open"}

    # No room anywhere that takes stores: a clear refusal naming what was asked for.
    Host.objects.filter(pk=open_host.pk).update(active=False)
    with pytest.raises(NoCapacity, match="no host accepting new stores has"):
        store_place(store_id=store_in_status("queued").pk)
    # Ready again, the host takes new stores.
    host_transition(host_id=draining.pk, to=Host.Status.READY, actor=staff_user)
    assert store_place(store_id=store_in_status("queued").pk).host == draining


@pytest.mark.django_db
def test_a_new_store_is_not_placed_on_a_host_whose_engine_is_away_but_a_placed_store_keeps_its_place(
    store_in_status, settings
):
    from provisioning.care.platform import platform_check_record
    from provisioning.lost_hosts import host_component, store_place_new

    settings.HOST_PLACEMENT_POLICY = "spread"
    away, answering = _hosts("away", "answering")
    Host.objects.filter(pk=away.pk).update(memory_capacity_mb=20480)  # the most room: spread would pick it
    placed_before = store_place_new(store_id=store_in_status("queued").pk)
    assert placed_before.host == away
    # One failing look is a blip; CARE_INCIDENT_THRESHOLD in a row open the engine's incident.
    platform_check_record(component=host_component(away.pk), ok=False, output="no answer", duration_ms=1)
    if settings.CARE_INCIDENT_THRESHOLD > 1:
        assert store_place_new(store_id=store_in_status("queued").pk).host == away
    for _ in range(settings.CARE_INCIDENT_THRESHOLD):
        platform_check_record(component=host_component(away.pk), ok=False, output="no answer", duration_ms=1)

    assert {store_place_new(store_id=store_in_status("queued").pk).host.name for _ in range(2)} == {"answering"}
    # A store placed there already (a retry of its provision) keeps its host, port and objects.
    again = store_place_new(store_id=placed_before.pk)
    assert (again.host, again.port) == (away, placed_before.port)
    # The engine answers again: the host takes new stores once more.
    platform_check_record(component=host_component(away.pk), ok=True, output="", duration_ms=1)
    assert store_place_new(store_id=store_in_status("queued").pk).host == away


# --- Two stores, two engines ---------------------------------------------------------------------------------


@pytest.fixture
def two_hosts(db, second_engine, settings):
    """The platform's own engine ("local", 127.0.0.1) and the second one registered with its check, with the
    same room: spread places the first new store on the older host and the next on the other."""
    settings.HOST_PLACEMENT_POLICY = "spread"
    Host.objects.exclude(name="local").update(active=False)
    local = Host.objects.get(name="local")
    Host.objects.filter(pk=local.pk).update(active=True, memory_capacity_mb=20480, cpu_capacity=32)
    remote = second_engine.host_register(name="engine2", port_range_start=21000)
    label = f"shophosting.env={settings.STORE_OBJECT_PREFIX}"
    yield Host.objects.get(pk=local.pk), remote
    if second_engine.answers():  # clean_test_stores cleans the first engine; this is the second's
        docker_client.labelled_objects_remove(label=label, base_url=second_engine.engine())


@pytest.mark.docker
@pytest.mark.django_db
def test_spread_places_two_new_stores_on_two_engines_and_nginx_routes_each_to_its_hosts_private_address(
    two_hosts,
    second_engine,
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    settings,
):
    from provisioning.orders import store_order_paid
    from stores.models import Store
    from stores.services import store_create
    from tests.test_provisioning import NGINX_PORT, fetch_until

    local, remote = two_hosts
    stores = []
    for number in (1, 2):
        store = store_create(
            customer=user_factory(), plan=woo_plan, domain=f"fleet{number}.test", site_title=f"Fleet Shop {number}"
        )
        with django_capture_on_commit_callbacks(execute=True):
            store_order_paid(store_id=store.pk)
        run_provisioning_worker()
        store.refresh_from_db()
        assert store.status == Store.Status.ACTIVE, store.jobs.get().error
        stores.append(store)
    first, second = stores
    assert (first.host, second.host) == (local, remote)

    # Each store's objects are on its own host's engine, and only there.
    for store, engine, other in ((first, local.engine, remote.engine), (second, remote.engine, local.engine)):
        label = f"shophosting.store={store.pk}"
        assert docker_client.labelled_objects(label=label, base_url=engine)["containers"] == sorted(
            f"{store.slug}-{role}" for role in ("cache", "db", "web")
        )
        assert docker_client.labelled_objects(label=label, base_url=other) == {
            "containers": [],
            "networks": [],
            "volumes": [],
        }
    # The remote store's web port is published on the host's private address only.
    web = docker_client.client(remote.engine).containers.get(f"{second.slug}-web").attrs
    assert web["HostConfig"]["PortBindings"]["80/tcp"] == [
        {"HostIp": second_engine.address, "HostPort": str(second.port)}
    ]
    assert remote.port_range_start <= second.port <= remote.port_range_end

    # nginx (in the platform's namespace) proxies each store to its host's private address.
    vhosts = {store: (Path(settings.NGINX_SITES_DIR) / f"{store.proxy_key}.conf").read_text() for store in stores}
    assert f"proxy_pass http://127.0.0.1:{first.port};" in vhosts[first]
    assert f"proxy_pass http://{second_engine.address}:{second.port};" in vhosts[second]
    for store in stores:
        page = fetch_until(NGINX_PORT, store.domain, store.site_title)
        assert page.status == 200 and f"<title>{store.site_title}" in page.text


@pytest.mark.docker
@pytest.mark.django_db
def test_host_images_copy_gives_a_host_the_store_images_it_lacks(two_hosts, second_engine, settings):
    from io import StringIO

    from django.core.management import call_command

    _, remote = two_hosts
    cache_image = settings.STORE_IMAGES["woocommerce"]["cache"]
    docker_client.client(remote.engine).images.remove(cache_image)  # the tag only: its layers stay
    assert docker_client.image_id(tag=cache_image, base_url=remote.engine) is None

    out = StringIO()
    call_command("host_images_copy", "engine2", "--dry-run", stdout=out)
    assert f"{cache_image}: would copy to engine2" in out.getvalue()
    assert f"{settings.STORE_IMAGES['woocommerce']['web']}: already on engine2" in out.getvalue()
    assert docker_client.image_id(tag=cache_image, base_url=remote.engine) is None

    call_command("host_images_copy", "engine2", stdout=out)
    assert docker_client.image_id(tag=cache_image, base_url=remote.engine) == docker_client.image_id(tag=cache_image)


# --- A host that goes away ---------------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.django_db
def test_a_stopped_engine_marks_its_stores_unreachable_with_an_incident_and_they_come_back_when_it_answers(
    two_hosts,
    second_engine,
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    client,
    settings,
):
    import time

    from provisioning.care.models import Incident
    from provisioning.hosts import BACK_MESSAGE, UNREACHABLE_MESSAGE
    from provisioning.orders import store_order_paid
    from shophosting.health import platform_checks_run
    from stores.models import Store
    from stores.services import store_create
    from tests.test_provisioning import NGINX_PORT, fetch_until

    local, remote = two_hosts
    Host.objects.filter(pk=local.pk).update(active=False)  # the store goes to the second engine
    store = store_create(customer=user_factory(), plan=woo_plan, domain="away.test", site_title="Away Shop")
    with django_capture_on_commit_callbacks(execute=True):
        store_order_paid(store_id=store.pk)
    run_provisioning_worker()
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE and store.host == remote
    settings.CARE_INCIDENT_THRESHOLD = 2
    component = f"docker.host-{remote.pk}"

    second_engine.stop()
    try:
        platform_checks_run()  # one failing look: a blip marks nothing
        store.refresh_from_db()
        assert store.status == Store.Status.ACTIVE
        assert not Incident.objects.filter(open_for_component=component).exists()

        platform_checks_run()  # the second in a row: the staff incident opens and the store is unreachable
        incident = Incident.objects.get(open_for_component=component)
        assert incident.store is None and "host engine2" in incident.summary
        store.refresh_from_db()
        assert store.status == Store.Status.UNREACHABLE  # not failed: nothing of the store's broke
        assert store.status_message == UNREACHABLE_MESSAGE
        assert store.events.last().note == "host engine2: its engine does not answer"
        client.force_login(store.customer)
        page = html.unescape(client.get(reverse("stores:detail", args=[store.pk])).content.decode())
        assert UNREACHABLE_MESSAGE in page and "10.213" not in page and "engine2" not in page

        platform_checks_run()  # still down: nothing changes, the incident stays the same one
        assert Incident.objects.get(open_for_component=component) == incident
    finally:
        second_engine.start()

    # The engine restarts the store's containers (restart policy unless-stopped); the next round brings it back.
    deadline = time.monotonic() + 60
    while docker_client.container_state(name=f"{store.slug}-web", base_url=remote.engine)[0] != "running":
        assert time.monotonic() < deadline, "the web container did not start again"
        time.sleep(0.5)
    platform_checks_run()
    store.refresh_from_db()
    assert store.status == Store.Status.ACTIVE and store.status_message == BACK_MESSAGE
    incident.refresh_from_db()
    assert incident.status == Incident.Status.CLOSED and incident.open_for_component is None
    page = fetch_until(NGINX_PORT, store.domain, store.site_title, timeout=30)
    assert page.status == 200 and "<title>Away Shop" in page.text


@pytest.mark.django_db
def test_staff_drain_a_host_and_take_it_back_from_the_admin_with_an_event_each(client, staff_user):
    [host] = _hosts("busy")
    client.force_login(staff_user)
    changelist = reverse("admin:stores_host_changelist")
    response = client.post(changelist, {"action": "drain_selected", "_selected_action": [host.pk]}, follow=True)
    assert "1 host(s) draining: no new store will be placed there." in response.content.decode()
    host.refresh_from_db()
    assert host.status == Host.Status.DRAINING and not host.accepts_new_stores
    assert "Draining (no new stores)" in client.get(changelist).content.decode()

    client.post(changelist, {"action": "ready_selected", "_selected_action": [host.pk]})
    host.refresh_from_db()
    assert host.status == Host.Status.READY and host.accepts_new_stores
    assert [(e.new_status, e.actor) for e in host.events.order_by("pk")] == [
        (Host.Status.DRAINING, staff_user),
        (Host.Status.READY, staff_user),
    ]
