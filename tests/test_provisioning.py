"""A paid WooCommerce order becomes a live store on the real Docker engine, with the locally built images."""

import http.client
import re
import socket
import ssl
import time
import urllib.parse
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from provisioning import docker_client, proxy
from provisioning.exceptions import JobConflict
from provisioning.models import JobStep, ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.services import job_enqueue
from stores.models import Store
from stores.services import store_create, store_credentials

pytestmark = [pytest.mark.django_db, pytest.mark.docker]
NGINX_PORT = 18080  # the test nginx (tests/conftest.py: nginx_server)
HTTPS_PORT = 18443


def fetch_until(port: int, domain: str, expected: str, timeout: float = 5.0):
    """nginx applies a reload asynchronously (old workers finish first, and may close the connection for
    a name they do not know yet): poll until the new config answers with `expected`. A name with a
    certificate redirects HTTP to HTTPS: the redirect is followed there (SNI `domain`; the chain is checked
    by fetch_https)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = fetch(port, domain)
            if port == NGINX_PORT and response.status == 301:
                assert response.getheader("Location") == f"https://{domain}:{HTTPS_PORT}/"
                response = fetch_https(HTTPS_PORT, domain, trusted_root=pebble_root())
            if expected in response.text or time.monotonic() > deadline:
                return response
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def fetch_https(port: int, domain: str, *, trusted_root: str, timeout: float = 5.0):
    """GET / over TLS with SNI `domain`, verifying the chain against pebble's root; never resolves `domain`.

    Retried for a few seconds: nginx applies a reload asynchronously, so an old worker may still answer with
    the certificate it had."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _fetch_https_once(port, domain, trusted_root=trusted_root)
        except ssl.SSLCertVerificationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def pebble_root() -> str:
    """The root pebble's certificates chain to (tests/plugins/acme.py: new at every pebble start)."""
    import requests
    from django.conf import settings

    return requests.get("https://127.0.0.1:15000/roots/0", verify=settings.ACME_CA_BUNDLE, timeout=5).text


def _fetch_https_once(port: int, domain: str, *, trusted_root: str):
    context = ssl.create_default_context(cadata=trusted_root)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname=domain) as tls:
        peer = tls.getpeercert()
        names = [value for kind, value in peer["subjectAltName"] if kind == "DNS"]
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode())
        response = http.client.HTTPResponse(tls)
        response.begin()
        response.text = response.read().decode(errors="replace")
    response.peer_cert_names = names
    response.peer_serial = int(peer["serialNumber"], 16)
    return response


def fetch(port: int, domain: str, path: str = "/", *, data: dict | None = None, cookie: str = ""):
    """One request to the store's published port with `Host: domain`; redirects are not followed (they
    point at the store's domain, which must never be resolved from here)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": domain, "Connection": "close", "Cookie": cookie}
    body = None
    if data is not None:
        body = urllib.parse.urlencode(data)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request("POST" if data is not None else "GET", path, body=body, headers=headers)
    response = connection.getresponse()
    response.text = response.read().decode(errors="replace")
    connection.close()
    return response


@pytest.fixture
def paid_store(
    user_factory, woo_plan, store_images, clean_test_stores, django_capture_on_commit_callbacks, run_provisioning_worker
):
    customer = user_factory(email="ada@example.com", company="Ada Ltd")
    store = store_create(customer=customer, plan=woo_plan, domain="shop1.test", site_title="Ada's Shop")
    with django_capture_on_commit_callbacks(execute=True):
        job = store_order_paid(store_id=store.pk)
    run_provisioning_worker()
    job.refresh_from_db()
    store.refresh_from_db()
    return store, job


def test_paid_woocommerce_order_becomes_a_live_store(paid_store, clean_test_stores, acme_server, settings):
    store, job = paid_store
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    assert store.status == Store.Status.ACTIVE

    # HTTP redirects to HTTPS (the certificate below), where the front page answers with the site title.
    assert fetch(NGINX_PORT, "shop1.test", "/cart/").getheader("Location") == f"https://shop1.test:{HTTPS_PORT}/cart/"
    page = fetch_until(NGINX_PORT, "shop1.test", "Ada&#039;s Shop")
    assert page.status == 200 and "<title>Ada&#039;s Shop" in page.text
    # Another name is not routed to this store (the default server closes the connection).
    with pytest.raises(http.client.RemoteDisconnected):
        fetch(NGINX_PORT, "unknown.test")

    # A certificate issued by pebble (real http-01 validation through nginx) is installed; HTTPS answers.
    store.refresh_from_db()
    assert store.tls_status == Store.TLS.ISSUED, store.tls_error
    https = fetch_https(HTTPS_PORT, "shop1.test", trusted_root=acme_server)
    assert https.status == 200 and "<title>Ada&#039;s Shop" in https.text
    # One certificate for the signup domain and the platform name (tests/test_store_names.py).
    assert sorted(https.peer_cert_names) == sorted(["shop1.test", f"adas-shop.{settings.PLATFORM_DOMAIN}"])

    # WordPress login works with the stored (encrypted) credentials.
    creds = store_credentials(store)
    login = fetch(
        store.port,
        "shop1.test",
        "/wp-login.php",
        data={"log": creds["admin_user"], "pwd": creds["admin_password"], "testcookie": "1"},
        cookie="wordpress_test_cookie=WP%20Cookie%20check",
    )
    assert login.status == 302, login.text[-500:]
    assert "wordpress_logged_in_" in " ".join(login.headers.get_all("Set-Cookie"))
    wrong = fetch(
        store.port,
        "shop1.test",
        "/wp-login.php",
        data={"log": creds["admin_user"], "pwd": "not the password", "testcookie": "1"},
        cookie="wordpress_test_cookie=WP%20Cookie%20check",
    )
    assert "wordpress_logged_in_" not in " ".join(wrong.headers.get_all("Set-Cookie") or [])

    # The plan's limits and the store's own network.
    web = docker_client.client().containers.get(f"{store.slug}-web").attrs
    assert web["HostConfig"]["Memory"] == store.plan.memory_mb * 1024 * 1024
    assert web["HostConfig"]["NanoCpus"] == int(store.plan.cpu_limit * 1_000_000_000)
    assert list(web["NetworkSettings"]["Networks"]) == [f"{store.slug}-net"]
    assert web["HostConfig"]["PortBindings"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(store.port)}]
    assert web["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    db = docker_client.client().containers.get(f"{store.slug}-db").attrs
    assert db["HostConfig"]["Memory"] == 512 * 1024 * 1024 and db["HostConfig"]["NanoCpus"] == 500_000_000
    assert db["HostConfig"]["PortBindings"] in (None, {})  # the database is never published

    # Every step is recorded with timings and readable log lines; no secret is in them.
    steps = list(job.steps.order_by("order"))
    assert [s.status for s in steps] == [JobStep.Status.SUCCEEDED] * len(steps)
    assert all(s.duration_seconds is not None for s in steps)
    log = " ".join(line.message for s in steps for line in s.log_lines.all())
    assert "WordPress installed" in log
    assert creds["admin_password"] not in log and creds["db_password"] not in log

    # The customer gets a link, never a password.
    assert mail.outbox[-1].to == ["ada@example.com"]
    assert "shop1.test" in mail.outbox[-1].body and creds["admin_password"] not in mail.outbox[-1].body


def test_a_new_live_store_gets_its_first_backup_queued_and_its_owner_is_told(
    user_factory, woo_plan, store_images, clean_test_stores, django_capture_on_commit_callbacks, run_provisioning_worker
):
    """The hooks step is real: once the job has made the store live (and so freed it), its first backup is
    queued, and both the customer's checklist and the staff log say so."""
    from backups.models import BackupRun, RunStatus
    from provisioning.selectors import job_progress_for_customer
    from shophosting.core.queues import rq_job_pending

    store = store_create(customer=user_factory(), plan=woo_plan, domain="firstbackup.test", site_title="First")
    with django_capture_on_commit_callbacks(execute=True):
        job = store_order_paid(store_id=store.pk)
    with django_capture_on_commit_callbacks(execute=True):  # the job's success commits, then the backup is queued
        run_provisioning_worker()
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE

    [run] = BackupRun.objects.filter(store=store)
    assert (run.kind, run.status) == (BackupRun.Kind.SCHEDULED, RunStatus.QUEUED)
    assert rq_job_pending(queue="backups", job_id=f"provisioning-job-{run.job_id}")  # a job of the store

    title = "Queue the first backup"
    customer = job_progress_for_customer(job)
    assert [step["status"] for step in customer["steps"] if step["title"] == title] == ["succeeded"]
    assert [line["message"] for line in customer["log"] if line["step"] == title] == ["done"]
    staff = [line.message for line in job.steps.get(name="hooks").log_lines.all()]  # the admin's job page
    assert staff == [
        "when this job has finished and the store is live, its first backup is scheduled",
        f"first backup queued (backup #{run.pk}); the next ones follow on the store's schedule",
    ]


def test_order_paid_twice_gives_one_job_and_one_active_job_per_store(paid_store):
    store, job = paid_store
    assert store_order_paid(store_id=store.pk).pk == job.pk
    suspend = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.SUSPEND)
    with pytest.raises(JobConflict, match=rf"This store is busy: suspend \(job #{suspend.pk}\) is queued since"):
        job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESUME)


def test_suspend_resume_and_teardown(
    paid_store, clean_test_stores, django_capture_on_commit_callbacks, run_provisioning_worker
):
    store, _ = paid_store
    for kind, status in [("suspend", Store.Status.SUSPENDED), ("resume", Store.Status.ACTIVE)]:
        with django_capture_on_commit_callbacks(execute=True):
            job = job_enqueue(store_id=store.pk, kind=kind)
        run_provisioning_worker()
        job.refresh_from_db()
        store.refresh_from_db()
        assert (job.status, store.status) == (ProvisioningJob.Status.SUCCEEDED, status), job.error
        if kind == "suspend":
            maintenance = fetch_until(NGINX_PORT, "shop1.test", "temporarily unavailable")
            assert maintenance.status == 503 and "temporarily unavailable" in maintenance.text
            assert docker_client.client().containers.get(f"{store.slug}-web").status == "exited"
    assert "Ada&#039;s Shop" in fetch_until(NGINX_PORT, "shop1.test", "Ada&#039;s Shop").text

    port = store.port
    with django_capture_on_commit_callbacks(execute=True):
        job = job_enqueue(store_id=store.pk, kind="teardown")
    run_provisioning_worker()
    store.refresh_from_db()
    assert store.status == Store.Status.DELETED and store.port is None and store.live_domain is None
    assert not proxy.vhost_path(store.proxy_key).exists() and not proxy.vhost_path("shop1.test").exists()
    assert docker_client.labelled_objects(label=f"shophosting.store={store.pk}") == {
        "containers": [],
        "networks": [],
        "volumes": [],
    }
    # The port is free for the next store.
    other = store_create(customer=store.customer, plan=store.plan, domain="shop2.test")
    from stores.services import store_place

    assert store_place(store_id=other.pk).port == port


def test_tls_failure_keeps_the_store_on_http_and_schedules_a_retry(
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    acme_server,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    """DNS not pointed yet (the ACME server's DNS answers SERVFAIL): live on HTTP, retry with backoff."""
    import django_rq
    import requests
    from rq.registry import ScheduledJobRegistry

    from provisioning.services import store_tls_ensure

    requests.post("http://127.0.0.1:8055/set-servfail", json={"host": "notpointed.test."}, timeout=5)
    try:
        store = store_create(customer=user_factory(), plan=woo_plan, domain="notpointed.test", site_title="Later")
        with django_capture_on_commit_callbacks(execute=True):
            job = store_order_paid(store_id=store.pk)
        with django_capture_on_commit_callbacks(execute=True):  # the job schedules the retry after commit
            run_provisioning_worker()
        job.refresh_from_db()
        store.refresh_from_db()
        assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
        assert store.status == Store.Status.ACTIVE
        assert store.tls_status == Store.TLS.PENDING and store.tls_attempts == 1
        assert "notpointed.test" in store.tls_error
        assert 100 <= (store.tls_next_attempt_at - timezone.now()).total_seconds() <= 125
        scheduled = ScheduledJobRegistry(queue=django_rq.get_queue("provisioning"))
        retries = [
            job_id
            for job_id in scheduled.get_job_ids()
            if django_rq.get_queue("provisioning").fetch_job(job_id).args == (store.pk,)
        ]
        assert len(retries) == 1
        for job_id in retries:  # this test runs the retry itself, below
            scheduled.remove(job_id, delete_job=True)
        assert "Later" in fetch_until(NGINX_PORT, "notpointed.test", "Later").text
    finally:
        requests.post("http://127.0.0.1:8055/clear-servfail", json={"host": "notpointed.test."}, timeout=5)

    # DNS is pointed now: the retry issues the certificate and HTTPS answers.
    store = store_tls_ensure(store_id=store.pk)
    assert store.tls_status == Store.TLS.ISSUED and store.tls_attempts == 0
    https = fetch_https(HTTPS_PORT, "notpointed.test", trusted_root=acme_server)
    assert https.status == 200 and "Later" in https.text


def test_magento_stack_wiring_and_its_cache_and_sessions_in_redis_with_standin_web_and_search_images(
    user_factory,
    woo_plan,  # seeds the whole plan catalogue
    store_images,
    clean_test_stores,
    acme_server,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    """Magento and OpenSearch are not obtainable here: STAND-IN images for web and search, real MariaDB,
    Redis and Varnish. Proves the five services are wired, limited and routed; not Magento itself."""
    from billing.models import Plan

    plan = Plan.objects.get(slug="magento-commerce-core")  # woo_plan seeded the whole catalogue
    # A store name that reads like an option is set literally (after `--`), not taken for `--help`.
    store = store_create(customer=user_factory(), plan=plan, domain="magento.test", site_title="--help")
    with django_capture_on_commit_callbacks(execute=True):
        job = store_order_paid(store_id=store.pk)
    with django_capture_on_commit_callbacks(execute=True):
        run_provisioning_worker()
    job.refresh_from_db()
    store.refresh_from_db()
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    assert store.status == Store.Status.ACTIVE

    # Varnish answers (published port and through nginx) and forwards to web:8080, whose page shows it
    # reaches the database, Redis and search.
    page = fetch_until(NGINX_PORT, "magento.test", "<title>--help")
    assert page.status == 200 and "<title>--help</title>" in page.text
    assert page.headers["X-Varnish-Backend"] == "web:8080" and page.headers["X-Varnish"]
    assert re.search(r"database: ok: [^<]*10\.11", page.text)
    assert "redis: ok: PONG" in page.text
    assert "search: ok: opensearch" in page.text
    # The installer was told to keep Magento's cache and sessions in the store's Redis (the stand-in records
    # them as env.php would, and checks they answer): wiring only, Magento itself is not here.
    assert "cache: redis cache:6379/0 ok: PONG" in page.text
    assert "sessions: redis cache:6379/2 ok: PONG" in page.text
    assert fetch(store.port, "magento.test").headers["X-Varnish-Backend"] == "web:8080"

    engine = docker_client.client()
    expected = {
        "varnish": (512, 0.5),
        "web": (plan.memory_mb, float(plan.cpu_limit)),
        "db": (1024, 1.0),
        "search": (1024, 0.5),
        "cache": (256, 0.25),
    }
    for role, (memory_mb, cpus) in expected.items():
        attrs = engine.containers.get(f"{store.slug}-{role}").attrs
        assert attrs["HostConfig"]["Memory"] == memory_mb * 1024 * 1024, role
        assert attrs["HostConfig"]["NanoCpus"] == int(cpus * 1_000_000_000), role
        assert list(attrs["NetworkSettings"]["Networks"]) == [f"{store.slug}-net"], role
        published = attrs["HostConfig"]["PortBindings"] or {}
        assert (role == "varnish") == bool(published), role  # only Varnish is published
    log = " ".join(line.message for step in job.steps.all() for line in step.log_lines.all())
    assert "Magento installation complete" in log
    assert store_credentials(store)["admin_password"] not in log

    # Renamed to what Magento's console would take for an option of its own: still set literally.
    from provisioning.stacks import stack_for

    store.site_title = '--admin-password=x "Mage" Shop'
    [_, (command, environment)] = stack_for(store).install_commands(store_credentials(store))
    code, output = docker_client.container_exec(name=f"{store.slug}-web", command=command, environment=environment)
    assert code == 0, output
    assert "<title>--admin-password=x &quot;Mage&quot; Shop</title>" in fetch(store.port, "magento.test").text


def test_update_limits_applies_a_new_plans_memory_and_cpu_to_running_containers(
    paid_store, django_capture_on_commit_callbacks, run_provisioning_worker
):
    from billing.models import Plan

    store, _ = paid_store
    store.plan = Plan.objects.get(slug="woocommerce-commerce-pro")  # 2 GB, 2 CPU
    store.save(update_fields=["plan"])
    with django_capture_on_commit_callbacks(execute=True):
        job = job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.UPDATE_LIMITS)
    run_provisioning_worker()
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    web = docker_client.client().containers.get(f"{store.slug}-web").attrs["HostConfig"]
    assert web["Memory"] == 2048 * 1024 * 1024 and web["NanoCpus"] == 2_000_000_000
    assert docker_client.client().containers.get(f"{store.slug}-web").status == "running"


def test_optional_phpmyadmin_is_loopback_only_and_asks_for_a_login(
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    # The WordPress installer takes the title from its environment: one that reads like an option, with
    # quotes, is stored as typed (escaped for HTML, as WordPress stores every title).
    title = '--help "PMA" Shop'
    store = store_create(customer=user_factory(), plan=woo_plan, domain="pma.test", site_title=title)
    Store.objects.filter(pk=store.pk).update(phpmyadmin_enabled=True)
    with django_capture_on_commit_callbacks(execute=True):
        job = store_order_paid(store_id=store.pk)
    with django_capture_on_commit_callbacks(execute=True):
        run_provisioning_worker()
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error

    attrs = docker_client.client().containers.get(f"{store.slug}-phpmyadmin").attrs
    binding = attrs["NetworkSettings"]["Ports"]["80/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1"  # never a public interface
    assert attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
    page = fetch_until(int(binding["HostPort"]), "localhost", "pma_username")
    assert page.status == 200
    assert 'name="pma_username"' in page.text and 'name="pma_password"' in page.text  # no auto-login

    store.refresh_from_db()  # the credentials the job saved
    code, stored = docker_client.container_exec(
        name=f"{store.slug}-db",
        command=[
            "mariadb",
            "-uwordpress",
            "wordpress",
            "-N",
            "-e",
            "SELECT option_value FROM wp_options WHERE option_name='blogname'",
        ],
        environment={"MYSQL_PWD": store_credentials(store)["db_password"]},
    )
    assert code == 0 and stored.strip() == "--help &quot;PMA&quot; Shop", stored


def test_a_failing_step_fails_the_job_and_store_with_reasons_and_a_retry_resumes(
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    settings,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    import django_rq
    from rq.registry import FailedJobRegistry

    from provisioning.services import store_retry

    good_images = settings.STORE_IMAGES
    settings.STORE_IMAGES = {**good_images, "woocommerce": {**good_images["woocommerce"], "web": "shophosting/nope:1"}}
    store = store_create(customer=user_factory(), plan=woo_plan, domain="broken.test", site_title="Broken")
    with django_capture_on_commit_callbacks(execute=True):
        job = store_order_paid(store_id=store.pk)
    run_provisioning_worker()
    job.refresh_from_db()
    store.refresh_from_db()
    assert job.status == ProvisioningJob.Status.FAILED
    assert job.error.startswith("step “Start the web server” failed: ProvisioningError: image shophosting/nope:1")
    failed_step = job.steps.get(status=JobStep.Status.FAILED)
    assert failed_step.name == "app" and "Traceback" in failed_step.output
    # The steps that never ran say so.
    assert set(job.steps.filter(order__gt=failed_step.order).values_list("status", flat=True)) == {"skipped"}
    assert store.status == Store.Status.FAILED
    assert store.status_message.startswith("Setting up your store stopped at “Start the web server”")
    assert "Traceback" not in store.status_message  # plain words for the customer
    assert job.rq_job_id in FailedJobRegistry(queue=django_rq.get_queue("provisioning")).get_job_ids()

    settings.STORE_IMAGES = good_images
    with django_capture_on_commit_callbacks(execute=True):
        retry = store_retry(store_id=store.pk)
    run_provisioning_worker()
    retry.refresh_from_db()
    store.refresh_from_db()
    assert retry.status == ProvisioningJob.Status.SUCCEEDED, retry.error
    assert store.status == Store.Status.ACTIVE
    reused = " ".join(line.message for line in retry.steps.get(name="data_services").log_lines.all())
    assert "db: " in reused and "already running" in reused  # resumed: nothing made twice


def test_nginx_rejecting_a_vhost_rolls_the_file_back(nginx_server):
    from provisioning.exceptions import ProvisioningError

    good = proxy.vhost_write(store_id=1, domain="rollback.test", upstream="127.0.0.1:29999", firewall=False)
    before = good.read_text()
    with pytest.raises(ProvisioningError, match="nginx rejected the vhost for rollback.test; rolled back: .*port"):
        proxy.vhost_write(store_id=1, domain="rollback.test", upstream="127.0.0.1:notaport", firewall=False)
    assert good.read_text() == before
    with pytest.raises(ProvisioningError, match="rolled back"):
        proxy.vhost_write(store_id=2, domain="fresh-rollback.test", upstream="127.0.0.1:notaport", firewall=False)
    assert not proxy.vhost_path("fresh-rollback.test").exists()
    assert proxy.vhost_remove(domain="rollback.test") is True


def test_certificates_near_expiry_are_renewed(paid_store, acme_server):
    """pebble issues one-hour certificates, so a fresh one is already inside the renewal window."""
    from provisioning import acme_client
    from provisioning.services import stores_tls_renew_due

    store, _ = paid_store
    assert store.tls_status == Store.TLS.ISSUED, store.tls_error
    first = acme_client.certificate_paths(store.proxy_key).fullchain_path.read_text()
    assert stores_tls_renew_due(within=timedelta(minutes=5)) == []  # not due yet
    assert stores_tls_renew_due(within=timedelta(days=30)) == [store.pk]
    store.refresh_from_db()
    assert store.tls_status == Store.TLS.ISSUED, store.tls_error
    assert acme_client.certificate_paths(store.proxy_key).fullchain_path.read_text() != first
    renewed = acme_client.certificate_paths(store.proxy_key).fullchain_path.read_bytes()
    from cryptography import x509

    serial = x509.load_pem_x509_certificate(renewed).serial_number
    deadline = time.monotonic() + 5  # old nginx workers finish their connections after the reload
    while (https := fetch_https(HTTPS_PORT, store.domain, trusted_root=acme_server)).peer_serial != serial:
        assert time.monotonic() < deadline, "nginx still serves the old certificate"
        time.sleep(0.05)
    assert https.status == 200
