"""The firewall of plans with advanced_security, and every store's request rate limit, on the real test nginx
(tests/plugins/nginx.py, 127.0.0.1:18080) with ModSecurity and Debian's OWASP Core Rule Set (issue #17, item 5).

The stores behind nginx are a small HTTP server in this process, as the routing tests need no containers:
nginx, ModSecurity and the rules are what is tested. The tests on nginx are marked `docker` with the other
routing tests, so they run with them under the lock that guards the fixed nginx port."""

import http.client
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import Plan
from provisioning import proxy
from provisioning.exceptions import ProvisioningError
from provisioning.kinds import kind_get
from provisioning.models import ProvisioningJob
from provisioning.services import store_vhost_write
from provisioning.steps import vhost_as_is
from stores.services import store_place, store_plan_change

pytestmark = pytest.mark.django_db
ON_NGINX = pytest.mark.docker  # the test nginx has a fixed port: run under the lock, with the routing tests

SQL_INJECTIONS = ["/?id=1'%20OR%20'1'='1", "/?q=1%20UNION%20SELECT%20password%20FROM%20users"]


class _Store(BaseHTTPRequestHandler):
    """Answers every request with 200 and the name it was asked for: a store that got the request."""

    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = f"store {self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Store)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def routed(nginx_server, upstream):
    """route(store_id, domain, firewall=...) writes the store's vhost through proxy.vhost_write and removes
    it afterwards; the firewall's log of a test's store ids starts empty."""
    domains = []

    def route(store_id: int, domain: str, *, firewall: bool) -> None:
        proxy.firewall_log_path(store_id).unlink(missing_ok=True)
        proxy.vhost_write(store_id=store_id, domain=domain, upstream=upstream, firewall=firewall)
        domains.append(domain)

    yield route
    for domain in domains:
        proxy.vhost_remove(domain=domain)


def request(connection: http.client.HTTPConnection, host: str, path: str, *, method="GET", body=None) -> int:
    headers = {"Host": host, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "Accept": "text/html"}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def status_of(host: str, path: str, **kwargs) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", 18080, timeout=10)
    try:
        return request(connection, host, path, **kwargs)
    finally:
        connection.close()


@ON_NGINX
def test_the_firewall_blocks_sql_injection_on_the_protected_store_only_logs_it_and_the_store_page_counts_it(
    routed, store_in_status, client
):
    scale = Plan.objects.get(slug="woocommerce-commerce-scale")
    assert scale.advanced_security
    protected = store_in_status("active", plan=scale, domain="fw-on.test")
    unprotected = store_in_status("active", domain="fw-off.test")  # Commerce Core: no advanced_security
    routed(protected.pk, protected.domain, firewall=True)
    routed(unprotected.pk, unprotected.domain, firewall=False)

    for path in SQL_INJECTIONS:
        assert status_of("fw-on.test", path) == 403, path
        assert status_of("fw-off.test", path) == 200, path
    # Ordinary requests pass the firewall, and so does WordPress's login with a password that looks like
    # SQL (the CRS's WordPress exclusions); the same field elsewhere on the store is blocked.
    assert status_of("fw-on.test", "/shop/?orderby=price&paged=2") == 200
    login = "log=admin&pwd=x%27+OR+%271%27%3D%271&wp-submit=Log+In"
    assert status_of("fw-on.test", "/wp-login.php", method="POST", body=login) == 200
    assert status_of("fw-on.test", "/contact/", method="POST", body=login) == 403

    # Each block is a line of the protected store's own log, with the request; the other store has none.
    # nginx writes it in its log phase, after the answer: wait for the last one.
    log = proxy.firewall_log_path(protected.pk)
    deadline = time.monotonic() + 5
    while log.read_text().count('"http_code":403') < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    blocked = [json.loads(line)["transaction"] for line in log.read_text().splitlines()]
    assert [(t["request"]["uri"], t["response"]["http_code"]) for t in blocked if t["response"]["http_code"] == 403][
        :2
    ] == [(path, 403) for path in SQL_INJECTIONS]
    assert not proxy.firewall_log_path(unprotected.pk).exists()
    assert proxy.firewall_blocks_count(store_id=protected.pk, since=timezone.now() - timedelta(days=7)) == (3, False)
    assert proxy.firewall_blocks_count(store_id=protected.pk, since=timezone.now() + timedelta(minutes=1)) == (0, False)

    client.force_login(protected.customer)
    page = client.get(reverse("stores:detail", args=[protected.pk])).content.decode()
    assert "Firewall: on — <strong>3</strong> requests blocked in the last 7 days." in page
    client.force_login(unprotected.customer)
    page = client.get(reverse("stores:detail", args=[unprotected.pk])).content.decode()
    assert "Firewall" not in page


@ON_NGINX
def test_a_burst_above_the_rate_limit_gets_429_while_another_store_keeps_answering(routed, settings):
    routed(900001, "noisy.test", firewall=False)
    routed(900002, "quiet.test", firewall=True)
    # Well past the burst: however slowly this machine sends them, the refill cannot keep up with all of them.
    burst = settings.NGINX_BURST_PER_CLIENT + 400
    connection = http.client.HTTPConnection("127.0.0.1", 18080, timeout=10)
    try:
        started = time.monotonic()
        statuses = [request(connection, "noisy.test", "/") for _ in range(burst)]
        elapsed = time.monotonic() - started
        assert set(statuses) == {200, 429}
        # Whatever the per-client rate let through while the burst ran, the rest was refused.
        allowed = settings.NGINX_BURST_PER_CLIENT + 1 + settings.NGINX_RATE_PER_CLIENT * elapsed
        assert statuses.count(200) <= allowed + 1 and statuses.count(429) >= burst - allowed - 1
        assert statuses[: settings.NGINX_BURST_PER_CLIENT] == [200] * settings.NGINX_BURST_PER_CLIENT
        # The same client at the same moment, another store: its own share, untouched.
        assert [request(connection, "quiet.test", "/") for _ in range(20)] == [200] * 20
    finally:
        connection.close()


@ON_NGINX
def test_a_store_s_http_and_https_servers_share_one_rate_limit_budget(nginx_server, upstream, settings, tmp_path):
    """A name the certificate does not cover yet is served on HTTP, the others on HTTPS: two server blocks of
    one store. Keyed by the store, not by the block's first name, a client alternating between them gets one
    store's budget, not two."""
    import ssl

    from tests.test_tls_scan import NAME as TLS_NAME
    from tests.test_tls_scan import self_signed_certificate

    proxy.vhost_write(
        store_id=900_003,
        domain=TLS_NAME,
        names=[TLS_NAME, "plain-name.test"],
        upstream=upstream,
        firewall=False,
        certificate=self_signed_certificate(tmp_path),
        tls_names=[TLS_NAME],
    )
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the budget is the question, not trust
    plain = http.client.HTTPConnection("127.0.0.1", 18080, timeout=10)
    secure = http.client.HTTPSConnection("127.0.0.1", 18443, timeout=10, context=context)
    try:
        burst = settings.NGINX_BURST_PER_CLIENT
        started = time.monotonic()
        statuses = []
        for _ in range(burst + 100):  # past one budget however slowly they go; two budgets: see below
            statuses.append(request(plain, "plain-name.test", "/"))
            statuses.append(request(secure, TLS_NAME, "/"))
        elapsed = time.monotonic() - started
        allowed = burst + 1 + settings.NGINX_RATE_PER_CLIENT * elapsed
        # Two budgets would have let all 2 x burst through.
        assert statuses.count(200) <= allowed + 1 and 429 in statuses, (statuses.count(200), allowed)
    finally:
        plain.close()
        secure.close()
        proxy.vhost_remove(domain=TLS_NAME)


@ON_NGINX
def test_the_firewall_follows_the_plan_when_its_vhost_is_rewritten(nginx_server, store_in_status):
    store = store_place(store_id=store_in_status("active", domain="fw-plan.test").pk)  # Commerce Core
    # The store's app is not running: a request the firewall lets through gets 502 from nginx, not 403.
    assert not store.plan.advanced_security
    store_vhost_write(store=store, mode="proxy")
    assert "modsecurity" not in proxy.vhost_path(store.proxy_key).read_text()
    assert status_of("fw-plan.test", SQL_INJECTIONS[0]) == 502

    # A plan change's job (update_limits) rewrites the vhost in the store's present mode, from its new plan.
    assert kind_get(ProvisioningJob.Kind.UPDATE_LIMITS).step_by_name["firewall"].run is vhost_as_is
    lines = []
    store = store_plan_change(store_id=store.pk, plan=Plan.objects.get(slug="woocommerce-commerce-scale"))
    vhost_as_is(store, lines.append)
    assert "modsecurity on;" in proxy.vhost_path(store.proxy_key).read_text()
    assert status_of("fw-plan.test", SQL_INJECTIONS[0]) == 403
    assert "firewall" in lines[-1]

    store = store_plan_change(store_id=store.pk, plan=Plan.objects.get(slug="woocommerce-commerce-pro"))
    vhost_as_is(store, lines.append)
    assert "modsecurity" not in proxy.vhost_path(store.proxy_key).read_text()
    assert status_of("fw-plan.test", SQL_INJECTIONS[0]) == 502
    proxy.vhost_remove(domain=store.proxy_key)


def audit_line(started: float, code: int) -> str:
    return json.dumps({"transaction": {"unique_id": f"{started:.3f}-abc", "response": {"http_code": code}}}) + "\n"


def test_the_block_count_reads_the_window_from_the_current_and_last_rotated_log_within_a_cap(settings, tmp_path):
    settings.NGINX_FIREWALL_LOG_DIR = str(tmp_path)
    now = time.time()
    day = 86400
    log = proxy.firewall_log_path(42)
    # Last week's file, kept uncompressed by logrotate, and an older compressed one that is never read.
    (tmp_path / "store-42.log-20261101-1").write_text(
        audit_line(now - 9 * day, 403) + audit_line(now - 6 * day, 403) + audit_line(now - 5 * day, 200)
    )
    (tmp_path / "store-42.log-20261025-1.gz").write_bytes(b"\x1f\x8b not read")
    log.write_text(audit_line(now - 2 * day, 403) + "not json\n" + audit_line(now - 60, 403) + audit_line(now, 200))
    since = timezone.now() - timedelta(days=7)

    assert proxy.firewall_blocks_count(store_id=42, since=since) == (3, False)
    assert proxy.firewall_blocks_count(store_id=42, since=timezone.now() - timedelta(days=1)) == (1, False)
    # A cap smaller than the logs: what was read is counted, and flagged as a lower bound.
    assert proxy.firewall_blocks_count(store_id=42, since=since, max_bytes=len(audit_line(now, 200)) * 2 + 5) == (
        1,
        True,
    )
    assert proxy.firewall_blocks_count(store_id=43, since=since) == (0, False)  # no log: nothing blocked


def test_a_firewall_log_directory_nginx_would_misread_is_refused(settings):
    settings.NGINX_FIREWALL_LOG_DIR = "/var/log/nginx/shop hosting"
    with pytest.raises(ProvisioningError, match="the firewall_log"):
        proxy.vhost_render(
            store_id=1,
            domain="shop.test",
            upstream="127.0.0.1:9",
            mode="proxy",
            firewall=True,
            listen_http="80",
            listen_https="443",
            acme_webroot="/acme",
            tls_cert=None,
            tls_key=None,
        )
