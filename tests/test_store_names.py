"""Store names (issue #17, items 1 and 4): a platform name for every store, one SAN certificate for every
active name, HTTP to HTTPS, HSTS on request only, names that stop pointing at us.

The tests marked docker run the real proxy (tests/plugins/nginx.py) with pebble validating every name by
http-01 through it (tests/plugins/acme.py); run them under /tmp/docker-tests.lock."""

import http.client
import socket
import ssl
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from provisioning import acme_client, proxy
from provisioning.models import ProvisioningJob
from provisioning.stacks.woocommerce import wordpress_urls
from stores.domains import platform_label_base, platform_label_refusal, platform_name
from stores.models import Store, StoreEvent, StoreName
from stores.services import store_create, store_names_ensure, store_names_tls_result, store_transition

pytestmark = pytest.mark.django_db
NGINX_PORT = 18080  # the test nginx (tests/plugins/nginx.py)
HTTPS_PORT = 18443


# --- deriving and validating platform names (no Docker) ----------------------------------------------------


@pytest.mark.parametrize(
    ("title", "label"),
    [
        ("Ada's Shop", "adas-shop"),
        ("Café Zürich — Öl & Brot!", "cafe-zurich-ol-brot"),
        ("  --Spaces  and___underscores-- ", "spaces-and-underscores"),
        ("東京の店", "store"),  # nothing ASCII is left: a neutral label, made unique by the store's id
        ("", "store"),
        ("A" * 80, "a" * 40),
        ("word " * 20, ("word-" * 8).rstrip("-")),  # cut at 40, never ending on a hyphen
    ],
)
def test_a_platform_label_is_a_dns_label_made_from_the_title(title, label):
    assert platform_label_base(title) == label
    assert platform_label_refusal(label) is None


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        ("www", "one of the platform's own host names"),
        ("admin", "one of the platform's own host names"),
        ("api", "one of the platform's own host names"),
        ("-shop", "not a valid platform name"),
        ("shop-", "not a valid platform name"),
        ("Shop", "not a valid platform name"),
        ("shop.eu", "not a valid platform name"),
        ("xn--shop", "encoded international name"),
        ("a" * 64, "longer than the 63 characters"),
        ("", "needs at least one letter or digit"),
    ],
)
def test_labels_that_are_not_a_store_s_get_a_clear_reason(label, reason):
    assert reason in platform_label_refusal(label)
    with pytest.raises(ValidationError, match=reason.replace("'", ".")):
        platform_name(label)


def test_the_platform_s_own_hosts_are_reserved(settings):
    settings.PLATFORM_DOMAIN = "hosting.example"
    settings.ALLOWED_HOSTS = ["control.hosting.example", "127.0.0.1"]
    settings.SITE_URL = "https://portal-eu.hosting.example"
    assert "own host names" in platform_label_refusal("control")
    assert "own host names" in platform_label_refusal("portal-eu")
    assert platform_name("ada") == "ada.hosting.example"


def test_a_store_gets_its_signup_domain_and_a_unique_platform_name(user_factory, woo_plan, settings):
    settings.PLATFORM_DOMAIN = "hosting.example"
    customer = user_factory()
    first = store_create(customer=customer, plan=woo_plan, domain="one.example.com", site_title="Ada's Shop")
    # The platform name is given with the store (it needs no DNS of the merchant's).
    assert [(n.name, n.kind, n.status, n.is_primary) for n in first.names.all()] == [
        ("one.example.com", StoreName.Kind.CUSTOM, StoreName.Status.ACTIVE, True),
        ("adas-shop.hosting.example", StoreName.Kind.PLATFORM, StoreName.Status.ACTIVE, False),
    ]
    served = [n.name for n in store_names_ensure(store_id=first.pk)]
    assert served == ["one.example.com", "adas-shop.hosting.example"]  # primary first
    assert [n.name for n in store_names_ensure(store_id=first.pk)] == served  # given once, stable

    second = store_create(customer=customer, plan=woo_plan, domain="two.example.com", site_title="Ada's Shop")
    reserved = store_create(customer=customer, plan=woo_plan, domain="three.example.com", site_title="Admin")
    assert store_names_ensure(store_id=second.pk)[1].name == f"adas-shop-{second.pk}.hosting.example"
    assert store_names_ensure(store_id=reserved.pk)[1].name == f"admin-{reserved.pk}.hosting.example"

    # A store's own domain can never be under the platform's domain, nor can it take another's.
    with pytest.raises(ValidationError, match="belongs to the platform"):
        store_create(customer=customer, plan=woo_plan, domain="adas-shop.hosting.example")
    with pytest.raises(ValidationError, match="already used by another store"):
        store_create(customer=customer, plan=woo_plan, domain="one.example.com")

    # A deleted store frees its names.
    Store.objects.filter(pk=first.pk).update(status=Store.Status.DELETING)
    store_transition(store_id=first.pk, to=Store.Status.DELETED)
    assert not StoreName.objects.filter(store=first).exists()
    assert store_create(customer=customer, plan=woo_plan, domain="one.example.com").names.count() == 2


def test_a_store_from_before_names_gets_them_on_its_next_vhost_write(user_factory, woo_plan, settings):
    settings.PLATFORM_DOMAIN = "hosting.example"
    store = store_create(customer=user_factory(), plan=woo_plan, domain="old.example.com", site_title="Old")
    store.names.all().delete()  # as the migration found it, had it been made before this change
    assert [n.name for n in store_names_ensure(store_id=store.pk)] == ["old.example.com", "old.hosting.example"]
    assert store.names.get(is_primary=True).name == "old.example.com"


def test_a_name_failing_validation_again_and_again_is_reported_and_left_off(user_factory, woo_plan):
    store = store_create(customer=user_factory(), plan=woo_plan, domain="gone.example.com", site_title="Gone")
    store_names_ensure(store_id=store.pk)
    platform = store.names.get(kind=StoreName.Kind.PLATFORM).name
    for attempt in range(1, 3):
        given_up = store_names_tls_result(
            store_id=store.pk, issued=[platform], failed={"gone.example.com": "DNS problem: NXDOMAIN"}, max_failures=3
        )
        assert given_up == [] and store.names.get(name="gone.example.com").tls_failures == attempt
    assert store_names_tls_result(
        store_id=store.pk, issued=[platform], failed={"gone.example.com": "DNS problem: NXDOMAIN"}, max_failures=3
    ) == ["gone.example.com"]
    gone = store.names.get(name="gone.example.com")
    assert gone.status == StoreName.Status.UNREACHABLE
    assert "does not point at us" in gone.status_message and "no longer renewed" in gone.status_message
    assert "NXDOMAIN" in gone.status_message
    assert StoreEvent.objects.filter(store=store, message__contains="gone.example.com stopped pointing").exists()
    # Still served (on HTTP), no longer asked for in a certificate.
    assert "gone.example.com" in [n.name for n in store_names_ensure(store_id=store.pk)]
    # The platform name's DNS is the platform's own: an outage there is retried, never given up.
    for _ in range(4):
        store_names_tls_result(store_id=store.pk, issued=[], failed={platform: "SERVFAIL"}, max_failures=3)
    assert store.names.get(name=platform).status == StoreName.Status.ACTIVE


# --- the vhost and the application's URLs (no Docker) ------------------------------------------------------


def render(**overrides):
    values = {
        "store_id": 1,
        "names": ["shop.example.com", "ada.hosting.example"],
        "upstream": "127.0.0.1:20001",
        "mode": "proxy",
        "firewall": False,
        "listen_http": "80",
        "listen_https": "443",
        "acme_webroot": "/srv/acme",
        "tls_cert": "/tls/fullchain.pem",
        "tls_key": "/tls/privkey.pem",
        "tls_names": ["ada.hosting.example"],
    }
    return proxy.vhost_render(**{**values, **overrides})


def test_the_vhost_serves_every_name_and_redirects_certified_ones_to_https(settings):
    settings.NGINX_LISTEN_HTTPS = "443"
    vhost = render()
    # Not on the certificate: plain HTTP, proxied. On it: HTTP redirects, except the ACME challenges.
    assert "server_name shop.example.com;" in vhost and "server_name ada.hosting.example;" in vhost
    assert vhost.count("return 301 https://$host$request_uri;") == 1
    assert vhost.count("location ^~ /.well-known/acme-challenge/") == 2
    assert "listen 443 ssl http2;" in vhost
    assert "Strict-Transport-Security" not in vhost  # off unless the store asks
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in render(hsts=True)
    # Every name on the certificate: one HTTPS server for all, and no plain-HTTP one.
    everything = render(tls_names=["shop.example.com", "ada.hosting.example"])
    assert "server_name shop.example.com ada.hosting.example;" in everything
    assert "proxy_pass" in everything and everything.count("listen 80;") == 1
    # No certificate: no redirect, no HTTPS.
    plain = render(tls_cert=None, tls_key=None)
    assert "return 301" not in plain and "ssl" not in plain
    settings.NGINX_LISTEN_HTTPS = "127.0.0.1:18443"
    assert "return 301 https://$host:18443$request_uri;" in render()


@pytest.mark.parametrize("bad", ["victim.example\n", "a.test;", "a.test b.test", ""])
def test_a_bad_name_never_reaches_the_vhost(bad):
    with pytest.raises(ProvisioningErrorType(), match="refusing to write an nginx vhost"):
        render(names=["shop.example.com", bad])
    with pytest.raises(ProvisioningErrorType(), match="it has no names"):
        render(names=[])


def ProvisioningErrorType():  # noqa: N802 - reads as the exception it returns
    from provisioning.exceptions import ProvisioningError

    return ProvisioningError


def test_wordpress_urls_follow_the_scheme_and_the_requested_known_name():
    lines = wordpress_urls(
        scheme="https", primary="shop.example.com", names=["shop.example.com", "ada.hosting.example"]
    )
    assert "in_array($shophosting_name, ['shop.example.com', 'ada.hosting.example'], true)" in lines
    assert "'https') . '://'" in lines and ": 'shop.example.com');" in lines
    assert "$_SERVER['HTTPS'] = 'on'" in lines  # is_ssl() follows the proxy's X-Forwarded-Proto
    with pytest.raises(Exception, match="refusing"):
        wordpress_urls(scheme="https", primary="x'); system('id'); //", names=[])


# --- the store page (no Docker) ----------------------------------------------------------------------------


def test_the_store_page_links_the_platform_name_and_hsts_needs_the_warning_read(
    client, user_factory, woo_plan, settings, django_capture_on_commit_callbacks
):
    settings.PLATFORM_DOMAIN = "hosting.example"
    customer = user_factory()
    store = store_create(customer=customer, plan=woo_plan, domain="mine.example.com", site_title="Mine")
    store_names_ensure(store_id=store.pk)
    Store.objects.filter(pk=store.pk).update(status=Store.Status.ACTIVE)
    client.force_login(customer)
    page = client.get(reverse("stores:detail", args=[store.pk])).content.decode()
    assert 'href="http://mine.hosting.example' in page and "Works now, before you change any DNS" in page
    assert "HSTS is off" in page and "refuse plain HTTP" in page

    hsts = reverse("stores:hsts", args=[store.pk])
    refused = client.post(hsts, {"hsts": "on"}, follow=True).content.decode()
    assert "tick the box to confirm you read the warning" in refused
    store.refresh_from_db()
    assert store.hsts_enabled is False and not store.jobs.exists()

    with django_capture_on_commit_callbacks():
        client.post(hsts, {"hsts": "on", "understood": "yes"})
    store.refresh_from_db()
    assert store.hsts_enabled is True
    assert store.jobs.get().kind == ProvisioningJob.Kind.HTTPS_SETTINGS
    assert StoreEvent.objects.filter(store=store, message="HSTS turned on.").exists()


def test_a_lost_certificate_retry_is_found_again_by_the_sweep(user_factory, woo_plan):
    """The retry lives only in Redis; nothing holds it here (as after a Redis restart)."""
    from provisioning.services import stores_tls_retry_lost

    store = store_create(customer=user_factory(), plan=woo_plan, domain="lost.example.com", site_title="Lost")
    Store.objects.filter(pk=store.pk).update(
        status=Store.Status.ACTIVE,
        tls_status=Store.TLS.PENDING,
        tls_attempts=2,
        tls_next_attempt_at=timezone.now() - timedelta(minutes=10),
    )
    given_up = store_create(customer=user_factory(), plan=woo_plan, domain="given-up.example.com", site_title="G")
    Store.objects.filter(pk=given_up.pk).update(status=Store.Status.ACTIVE, tls_status=Store.TLS.FAILED)
    import django_rq

    queue = django_rq.get_queue("provisioning")
    try:
        assert store.pk in stores_tls_retry_lost()
        assert given_up.pk not in stores_tls_retry_lost()  # given up: every name stopped pointing at us
    finally:
        queue.empty()


# --- on the real proxy: nginx and pebble (Docker; under the lock) -----------------------------------------


def https_get(name: str, path: str = "/", *, trusted_root: str, timeout: float = 5.0):
    """GET over TLS to the test nginx with SNI `name`, trusting only pebble's root; never resolves `name`.
    Retried briefly: an old nginx worker may still answer with the previous certificate."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            context = ssl.create_default_context(cadata=trusted_root)
            raw = socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10)
            with context.wrap_socket(raw, server_hostname=name) as tls:
                names = [value for kind, value in tls.getpeercert()["subjectAltName"] if kind == "DNS"]
                tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
                response = http.client.HTTPResponse(tls)
                response.begin()
                response.text = response.read().decode(errors="replace")
            response.peer_cert_names = names
            return response
        except (ssl.SSLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def http_get(name: str, path: str = "/"):
    connection = http.client.HTTPConnection("127.0.0.1", NGINX_PORT, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": name, "Connection": "close"})
        response = connection.getresponse()
        response.text = response.read().decode(errors="replace")
        return response
    finally:
        connection.close()


@pytest.fixture
def live_store(
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    acme_server,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    from provisioning.orders import store_order_paid

    store = store_create(customer=user_factory(), plan=woo_plan, domain="names1.test", site_title="Names One")
    with django_capture_on_commit_callbacks(execute=True):
        job = store_order_paid(store_id=store.pk)
    run_provisioning_worker()
    job.refresh_from_db()
    store.refresh_from_db()
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    return store


@pytest.mark.docker
def test_a_new_store_answers_on_its_platform_name_over_https_at_once(
    live_store, acme_server, settings, django_capture_on_commit_callbacks, run_provisioning_worker
):
    store = live_store
    platform = store.names.get(kind=StoreName.Kind.PLATFORM).name
    assert platform == f"names-one.{settings.PLATFORM_DOMAIN}"
    assert store.tls_status == Store.TLS.ISSUED, store.tls_error
    assert sorted(acme_client.certificate_names(domain=store.proxy_key)) == sorted(["names1.test", platform])

    # HTTPS on the platform name, the certificate chaining to pebble's root and naming both names.
    page = https_get(platform, trusted_root=acme_server)
    assert page.status == 200 and "Names One" in page.text
    assert sorted(page.peer_cert_names) == sorted(["names1.test", platform])
    assert page.getheader("Strict-Transport-Security") is None  # off by default

    # HTTP redirects to HTTPS on both names, except the ACME challenge path.
    for name in (platform, "names1.test"):
        redirect = http_get(name, "/shop/?p=1")
        assert redirect.status == 301 and redirect.getheader("Location") == f"https://{name}:{HTTPS_PORT}/shop/?p=1"
    challenge = http_get(platform, "/.well-known/acme-challenge/missing-token")
    assert challenge.status == 404  # served from the webroot, not redirected

    # WordPress's own URLs are https:// ones of the primary name on it, and of the platform name on that.
    primary = https_get("names1.test", trusted_root=acme_server)
    assert "https://names1.test/" in primary.text and "http://names1.test/" not in primary.text
    assert f"https://{platform}/" in page.text and "http://names1.test" not in page.text

    # HSTS when the merchant turns it on (a job rewrites the vhost), gone when turned off.
    from provisioning.services import store_hsts_change

    with django_capture_on_commit_callbacks(execute=True):
        store_hsts_change(store_id=store.pk, enabled=True)
    run_provisioning_worker()
    deadline = time.monotonic() + 5
    while (hsts := https_get(platform, trusted_root=acme_server)).getheader("Strict-Transport-Security") is None:
        assert time.monotonic() < deadline, "HSTS never appeared"
        time.sleep(0.1)
    assert hsts.getheader("Strict-Transport-Security") == "max-age=31536000"


@pytest.mark.docker
def test_renewal_asks_for_every_name_and_a_name_not_pointing_at_us_keeps_the_others_on_https(
    live_store, acme_server, settings
):
    import requests

    from provisioning.services import store_tls_ensure, stores_tls_renew_due

    store = live_store
    platform = store.names.get(kind=StoreName.Kind.PLATFORM).name
    # A store from before platform names has a certificate for its signup domain only: renewal adds it.
    acme_client.certificate_issue(domain=store.proxy_key, names=[store.domain])
    assert acme_client.certificate_names(domain=store.proxy_key) == ["names1.test"]
    assert stores_tls_renew_due(within=timedelta(minutes=5)) == [store.pk]  # not expiring, but a name short
    assert sorted(acme_client.certificate_names(domain=store.proxy_key)) == sorted(["names1.test", platform])
    # Expiring (pebble's certificates last an hour): renewed with every name again.
    assert stores_tls_renew_due(within=timedelta(days=30)) == [store.pk]
    assert sorted(acme_client.certificate_names(domain=store.proxy_key)) == sorted(["names1.test", platform])

    # A name stops resolving (a name pebble never validated, so no earlier authorization is reused): the others
    # keep their certificate, it is retried and, after TLS_NAME_MAX_FAILURES failures, reported and left off.
    StoreName.objects.create(store=store, name="gone-names.test", kind=StoreName.Kind.CUSTOM)
    settings.TLS_NAME_MAX_FAILURES = 2
    requests.post("http://127.0.0.1:8055/set-servfail", json={"host": "gone-names.test."}, timeout=5)
    try:
        store = store_tls_ensure(store_id=store.pk)
        assert store.tls_status == Store.TLS.PENDING and "gone-names.test" in store.tls_error
        assert sorted(acme_client.certificate_names(domain=store.proxy_key)) == sorted(["names1.test", platform])
        assert https_get(platform, trusted_root=acme_server).status == 200
        assert "Names One" in http_get("gone-names.test").text  # off the certificate: served on plain HTTP
        store = store_tls_ensure(store_id=store.pk)
    finally:
        requests.post("http://127.0.0.1:8055/clear-servfail", json={"host": "gone-names.test."}, timeout=5)
    assert store.tls_status == Store.TLS.ISSUED and store.tls_next_attempt_at is None
    gone = store.names.get(name="gone-names.test")
    assert gone.status == StoreName.Status.UNREACHABLE and "does not point at us" in gone.status_message
    assert sorted(acme_client.certificate_names(domain=store.proxy_key)) == sorted(["names1.test", platform])
    assert stores_tls_renew_due(within=timedelta(minutes=5)) == []  # not renewed in vain
