import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"


def require_or_skip(what: str, reason: str) -> None:
    """`what` is missing: skip locally, but fail under CI=true, where a green run must not hide tests that
    never ran (bin/test installs and starts everything the tests need)."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"{what} is missing: {reason}")


def require_tool(name: str) -> str:
    """The path of the program `name`, or require_or_skip when it is not installed."""
    import shutil

    path = shutil.which(name)
    if path is None:
        require_or_skip(name, f"`{name}` is not on PATH; bin/test installs it")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true any skip (pytest.skip, skipif, importorskip, from any plugin) is reported as a failure,
    unless the test carries @pytest.mark.ci_may_skip(reason=...) saying why skipping there is fine."""
    outcome = yield
    report = outcome.get_result()
    if not (IN_CI and report.skipped) or hasattr(report, "wasxfail"):
        return
    allowed = item.get_closest_marker("ci_may_skip")
    if allowed is not None and allowed.kwargs.get("reason"):
        return
    _fail_skip_under_ci(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped while it is collected (a module-level importorskip or skip)."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        _fail_skip_under_ci(report)


def _fail_skip_under_ci(report) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters and cached sessions live in the test Redis database; start each test clean.

    Only the cache's own keys go: a FLUSHDB would also drop the RQ worker registrations that share it."""
    cache.delete_pattern("*")
    yield


@pytest.fixture
def security_log():
    """Reads the JSON lines that the code under test appends to security.log."""
    path = Path(settings.SECURITY_LOG_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    start = path.stat().st_size

    def new_lines() -> list[dict]:
        with path.open(encoding="utf-8") as handle:
            handle.seek(start)
            return [json.loads(line) for line in handle if line.strip()]

    return new_lines


@pytest.fixture
def user_factory(db):
    from accounts.services import customer_create

    counter = iter(range(1, 10_000))

    def make(email: str | None = None, password: str = "correct horse battery", **fields):
        return customer_create(email=email or f"merchant{next(counter)}@example.com", password=password, **fields)

    return make


@pytest.fixture
def site_pages(db):
    """The marketing site as `manage.py site_seed` creates it: home, pricing, features, about, contact."""
    from cms.services import site_seed

    return site_seed()


@pytest.fixture
def staff_user(db):
    from accounts.roles import Role
    from accounts.services import staff_user_ensure

    user, _ = staff_user_ensure(email="staff@example.com", role=Role.SUPER_ADMIN, password="staff password 123")
    return user


@pytest.fixture(scope="session")
def docker_engine():
    """The real engine that bin/test starts; every Docker test shares it."""
    from provisioning import docker_client

    try:
        return docker_client.engine_info()
    except docker_client.DockerUnavailable as exc:
        require_or_skip("a Docker engine", f"none answers ({exc}); bin/test starts one")


@pytest.fixture(scope="module")
def rq_worker_process():
    """A real `manage.py rqworker` on the test Redis, so the worker heartbeat is genuine.

    Module-scoped: it must be gone before provisioning tests enqueue jobs, which it would otherwise take
    (it runs outside the test's transaction)."""
    from rq import Worker

    from shophosting.health import _redis_connection

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shophosting.settings.test"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "default", "provisioning", "backups", "--with-scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(w.pid == process.pid for w in Worker.all(connection=_redis_connection())):
            break
        if process.poll() is not None:
            raise RuntimeError(f"rqworker exited: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("rqworker did not register within 30 s")
    yield process
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture(scope="session")
def store_images(docker_engine):
    """The locally built store images (cached by content hash: about 1 s when nothing changed)."""
    from provisioning.images import images_build

    return images_build(log=lambda message: None)


NGINX_CONF = """
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    # The platform's default server: ACME challenges for any name (so validation never depends on a
    # reload having reached every worker), and nothing else for names without a store.
    server {{
        listen {listen} default_server;
        location /.well-known/acme-challenge/ {{ root {prefix}/acme; }}
        location / {{ return 444; }}
    }}
    include {prefix}/sites/*.conf;
}}
"""


def nginx_test_conf(*, prefix: Path, listen: str) -> str:
    """The test nginx's main config. Started by root, nginx would run its workers as `nobody`, who cannot
    enter a checkout under a 0700 directory (/root/...) to read the ACME webroot or its temp paths: so its
    workers run as the invoking user. Not root, nginx cannot switch users and its workers are already us."""
    user = ""
    if os.geteuid() == 0:
        import grp
        import pwd

        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    return NGINX_CONF.format(user=user, prefix=prefix, listen=listen)


@pytest.fixture(scope="session")
def nginx_server():
    """A real nginx on 127.0.0.1:18080 with the test settings' prefix; the vhosts tests write are routed."""
    require_tool(settings.NGINX_COMMAND[0])
    prefix = Path(settings.NGINX_SITES_DIR).parent
    for directory in ("sites", "acme", "tmp"):
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    for stale in (prefix / "sites").glob("*.conf"):
        stale.unlink()
    (prefix / "nginx.conf").write_text(nginx_test_conf(prefix=prefix, listen=settings.NGINX_LISTEN_HTTP))
    subprocess.run([*settings.NGINX_COMMAND, "-s", "quit"], capture_output=True)  # a leftover from a killed run
    time.sleep(0.2)
    subprocess.run(settings.NGINX_COMMAND, check=True)
    yield settings.NGINX_LISTEN_HTTP
    subprocess.run([*settings.NGINX_COMMAND, "-s", "quit"], capture_output=True)


@pytest.fixture
def clean_test_stores(docker_engine, nginx_server, acme_server):
    """Removes every Docker object of test stores before and after the test."""
    from provisioning import docker_client

    label = f"shophosting.env={settings.STORE_OBJECT_PREFIX}"
    docker_client.labelled_objects_remove(label=label)
    yield label
    docker_client.labelled_objects_remove(label=label)


@pytest.fixture
def woo_plan(db):
    from billing.models import Plan
    from billing.services import plan_catalogue_seed

    plan_catalogue_seed()
    return Plan.objects.get(slug="woocommerce-commerce-core")


@pytest.fixture
def run_provisioning_worker():
    """Drains the `provisioning` queue with a real RQ worker in this process (SimpleWorker: no fork,
    so it sees the test's data)."""
    import django_rq
    from rq import SimpleWorker

    def run() -> None:
        django_rq.get_worker("provisioning", worker_class=SimpleWorker).work(burst=True)

    return run


def _pebble_tls_files(directory: Path) -> None:
    """A small CA and a certificate for 127.0.0.1/localhost, for pebble's own HTTPS (Debian ships none)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if (directory / "ca.pem").exists() and (directory / "cert.pem").exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ShopHosting test ACME CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "cert.pem").write_bytes(cert.public_bytes(pem))
    (directory / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="session")
def acme_server(nginx_server):
    """Debian's pebble on 127.0.0.1:14000 with real http-01 validation through the test nginx, and
    pebble-challtestsrv as its DNS (every name resolves to 127.0.0.1; the machine's resolver is never used)."""
    import requests

    require_tool("pebble")
    require_tool("pebble-challtestsrv")
    directory = Path(settings.ACME_CA_BUNDLE).parent
    _pebble_tls_files(directory)
    config = {
        "pebble": {
            "listenAddress": "127.0.0.1:14000",
            "managementListenAddress": "127.0.0.1:15000",
            "certificate": str(directory / "cert.pem"),
            "privateKey": str(directory / "key.pem"),
            "httpPort": int(settings.NGINX_LISTEN_HTTP.rsplit(":", 1)[1]),
            "tlsPort": int(settings.NGINX_LISTEN_HTTPS.rsplit(":", 1)[1]),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": 3600,
        }
    }
    (directory / "pebble-config.json").write_text(json.dumps(config))
    # Accounts do not survive a pebble restart: a new account key for each pebble lifetime.
    Path(settings.ACME_ACCOUNT_KEY_PATH).unlink(missing_ok=True)
    dns = subprocess.Popen(
        [
            "pebble-challtestsrv",
            "-dns01",
            "127.0.0.1:8053",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            "127.0.0.1:8055",
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pebble = subprocess.Popen(
        ["pebble", "-config", str(directory / "pebble-config.json"), "-dnsserver", "127.0.0.1:8053"],
        env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(settings.ACME_DIRECTORY_URL, verify=settings.ACME_CA_BUNDLE, timeout=1)
            break
        except requests.RequestException:
            if pebble.poll() is not None or time.monotonic() > deadline:
                dns.kill()
                raise RuntimeError(f"pebble did not start: {pebble.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.1)
    time.sleep(0.2)
    if pebble.poll() is not None:  # another pebble answered: ours could not bind its ports
        dns.kill()
        raise RuntimeError(f"pebble exited (a stale pebble still running?): {pebble.stderr.read().decode()[-2000:]}")
    root = requests.get("https://127.0.0.1:15000/roots/0", verify=settings.ACME_CA_BUNDLE, timeout=5).text
    yield root  # the root that issued certificates chain to (new at every pebble start)
    pebble.terminate()
    dns.terminate()
    pebble.wait(timeout=10)
    dns.wait(timeout=10)


@pytest.fixture
def stripe_api():
    """Stripe's HTTP API faked at the boundary (tests/stripe_fake.py). Any request it does not answer fails."""
    import responses
    import stripe

    from tests.stripe_fake import StripeFake

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield StripeFake(mock, stripe.api_base)


@pytest.fixture
def stripe_webhook(db, client):
    """POSTs events to dj-stripe's real webhook endpoint, signed with the endpoint's secret."""
    import json as jsonlib

    from tests.stripe_fake import StripeFake, webhook_endpoint_create

    secret = "whsec_test_shophosting_webhook_secret"
    endpoint = webhook_endpoint_create(
        endpoint_id="we_test_shophosting", secret=secret, url="https://shophosting.local/stripe/webhook/"
    )

    class Webhook:
        url = f"/stripe/webhook/{endpoint.djstripe_uuid}/"

        def post(self, event: dict, *, secret: str = secret, headers: dict | None = None):
            payload = jsonlib.dumps(event)
            signed = StripeFake.signed_headers(payload, secret) if headers is None else headers
            return client.post(self.url, data=payload, content_type="application/json", **signed)

    return Webhook()


@pytest.fixture
def priced_plan(woo_plan, stripe_api):
    """The WooCommerce Commerce Core plan, created in (fake) Stripe through the pricing sync."""
    from billing.services import plan_price_create

    return plan_price_create(plan_id=woo_plan.pk)


@pytest.fixture(scope="session")
def restic_repository():
    """A real, empty restic repository for this test session (var/test/restic), with its password file."""
    import shutil

    from backups import restic

    require_tool(settings.RESTIC_BINARY)
    root = Path(settings.RESTIC_REPOSITORY).parent
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    Path(settings.RESTIC_PASSWORD_FILE).write_text("test-only restic password\n")
    Path(settings.RESTIC_PASSWORD_FILE).chmod(0o600)
    assert restic.repository_init() is True
    return settings.RESTIC_REPOSITORY


@pytest.fixture
def run_backups_worker(restic_repository):
    """Drains the `backups` queue with a real RQ worker in this process (SimpleWorker, like provisioning)."""
    import django_rq
    from rq import SimpleWorker

    def run() -> None:
        django_rq.get_worker("backups", worker_class=SimpleWorker).work(burst=True)

    return run
