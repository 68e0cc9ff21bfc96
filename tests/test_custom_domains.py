"""Custom domains with proof, aliases and the primary name (issue #17, items 2 and 3).

The tests marked docker share ONE provisioned WooCommerce store (module fixture `proven_store`, real commits,
removed at the end) and walk it in order: a domain waits for its TXT record, then gets a certificate with its
www. alias; the names redirect; the primary name changes and WordPress follows; a second account can neither
claim nor block it. They run the real proxy (nginx), pebble, and pebble-challtestsrv as the DNS that both
pebble and the proof (stores/dns.py, DNS_RESOLVERS=127.0.0.1:8053) ask; run them under /tmp/docker-tests.lock.
The others need only the database."""

import http.client
import re

import pytest
import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse

from provisioning import acme_client, proxy
from provisioning.domains import (
    store_domain_request,
    store_names_check,
    store_primary_change,
    stores_names_check_due,
)
from provisioning.models import ProvisioningJob
from stores.dns import NameRecords
from stores.models import Store, StoreName
from stores.names import store_domain_add, store_domain_remove, store_name_check_record
from stores.services import store_create, store_names_tls_result
from tests.test_backups import sql
from tests.test_store_names import HTTPS_PORT, http_get, https_get

CHALLTESTSRV = "http://127.0.0.1:8055"
DOMAIN = "proven-shop.test"
WWW = f"www.{DOMAIN}"
N = StoreName.Status


def txt_set(record: str, value: str) -> None:
    requests.post(f"{CHALLTESTSRV}/set-txt", json={"host": f"{record}.", "value": value}, timeout=5).raise_for_status()


def txt_clear(record: str) -> None:
    requests.post(f"{CHALLTESTSRV}/clear-txt", json={"host": f"{record}."}, timeout=5).raise_for_status()


def a_set(name: str, address: str) -> None:
    requests.post(
        f"{CHALLTESTSRV}/add-a", json={"host": f"{name}.", "addresses": [address]}, timeout=5
    ).raise_for_status()


def a_clear(name: str) -> None:
    requests.post(f"{CHALLTESTSRV}/clear-a", json={"host": f"{name}."}, timeout=5).raise_for_status()


def not_served(name: str) -> bool:
    """nginx's default server closes the connection (444) for a name no vhost serves."""
    try:
        http_get(name)
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return True
    return False


# --- bad input and the rules of proof (database only) ------------------------------------------------------


@pytest.mark.django_db
def test_bad_domains_get_a_clear_error_and_change_nothing(user_factory, woo_plan, settings):
    settings.PLATFORM_DOMAIN = "hosting.example"
    store = store_create(customer=user_factory(), plan=woo_plan, site_title="Bad Input")
    before = list(store.names.values_list("name", flat=True))
    for domain, reason in [
        ("not a domain", "Enter a full domain with a dot"),
        ("bad_label.example.com", "not a valid part of a domain"),
        ("http://shop.example.com/", "without http://"),
        ("*.example.com", "Wildcard"),
        ("203.0.113.9", "not an IP address"),
        ("hosting.example", "belongs to the platform"),
        ("mine.hosting.example", "belongs to the platform"),
        ("", "Enter your store's domain"),
    ]:
        with pytest.raises(ValidationError, match=re.escape(reason)):
            store_domain_add(store_id=store.pk, domain=domain)
    store_domain_add(store_id=store.pk, domain="Dup.Example.com")
    with pytest.raises(ValidationError, match="already one of this store's names"):
        store_domain_add(store_id=store.pk, domain="dup.example.com")
    assert sorted(store.names.values_list("name", flat=True)) == sorted(
        [*before, "dup.example.com", "www.dup.example.com"]
    )


@pytest.mark.django_db
def test_a_pending_domain_blocks_nobody_and_a_proven_one_cannot_be_taken(user_factory, woo_plan):
    first = store_create(customer=user_factory(), plan=woo_plan, site_title="First")
    second = store_create(customer=user_factory(), plan=woo_plan, site_title="Second")
    [mine, _] = store_domain_add(store_id=first.pk, domain="contested.example")
    [theirs, _] = store_domain_add(store_id=second.pk, domain="contested.example")  # waiting holds nothing
    assert mine.proof_token != theirs.proof_token

    # Only the token in DNS proves control: the first store's record does nothing for the second.
    records = NameRecords(name="contested.example", txt=(mine.proof_token,), addresses=frozenset({"127.0.0.1"}))
    assert store_name_check_record(name_id=theirs.pk, records=records) is False
    assert store_name_check_record(name_id=mine.pk, records=records) is True
    mine.refresh_from_db()
    assert mine.status == N.ACTIVE and mine.served_name == "contested.example" and mine.proved_at

    # Once proven, nobody else gets it: not by proof (even with their own token in DNS too), not by adding it.
    both = NameRecords(name="contested.example", txt=(mine.proof_token, theirs.proof_token), addresses=frozenset())
    assert store_name_check_record(name_id=theirs.pk, records=both) is False
    theirs.refresh_from_db()
    assert theirs.status == N.PENDING and theirs.served_name is None
    assert theirs.status_message == "This domain is already in use by another store."
    third = store_create(customer=user_factory(), plan=woo_plan, site_title="Third")
    with pytest.raises(ValidationError, match="already in use by another store"):
        store_domain_add(store_id=third.pk, domain="contested.example")
    with pytest.raises(ValidationError, match="already used by another store"):
        store_create(customer=user_factory(), plan=woo_plan, domain="contested.example")

    # The platform name and the primary name stay; a served custom one can be removed and is free again.
    with pytest.raises(ValidationError, match="platform name cannot be removed"):
        store_domain_remove(store_id=first.pk, name_id=first.names.get(kind="platform").pk)
    assert store_domain_remove(store_id=first.pk, name_id=mine.pk) is True
    assert store_name_check_record(name_id=theirs.pk, records=both) is True


@pytest.mark.django_db
def test_the_store_page_shows_the_record_to_create_and_says_why_a_domain_is_refused(client, user_factory, woo_plan):
    customer = user_factory()
    store = store_create(customer=customer, plan=woo_plan, custom_domain="page.example", site_title="Page Shop")
    client.force_login(customer)
    page = client.get(reverse("stores:detail", args=[store.pk])).content.decode()
    row = store.names.get(name="page.example")
    assert "_shophosting-challenge.page.example" in page and row.proof_token in page
    assert "page.example and www.page.example" in page and "waiting for proof" in page.lower()
    assert "192.0.2.80" in page  # PLATFORM_PUBLIC_ADDRESSES (test settings): the A record that proves it too
    assert "not checked yet" in page and "Check now" in page

    refused = client.post(reverse("stores:domain_add", args=[store.pk]), {"domain": "page.example"}, follow=True)
    assert "Not added: page.example is already one of this store&#x27;s names." in refused.content.decode()
    bad = client.post(reverse("stores:domain_add", args=[store.pk]), {"domain": "x;y.example"}, follow=True)
    assert "Not added:" in bad.content.decode() and "not a valid part of a domain" in bad.content.decode()
    assert store.names.count() == 3  # the platform name, page.example and its www.


@pytest.mark.django_db
def test_a_merchant_adds_checks_and_removes_a_domain_and_a_dns_outage_changes_nothing(
    client, user_factory, woo_plan, settings
):
    settings.DNS_RESOLVERS, settings.DNS_TIMEOUT = ["127.0.0.1:9"], 0.3  # nothing answers DNS there
    customer = user_factory()
    store = store_create(customer=customer, plan=woo_plan, site_title="Merchant Shop")
    client.force_login(customer)
    detail = reverse("stores:detail", args=[store.pk])
    added = client.post(reverse("stores:domain_add", args=[store.pk]), {"domain": "merchant.example"}, follow=True)
    assert "Added merchant.example. Create the DNS record shown below." in added.content.decode()  # no www.
    row = store.names.get(name="merchant.example")
    assert row.status == N.PENDING and row.checked_at is not None and "DNS did not answer" in row.status_message
    checked = client.post(reverse("stores:domain_check", args=[store.pk]), follow=True).content.decode()
    assert "Not proven yet" in checked and "DNS did not answer" in checked
    primary = client.post(reverse("stores:domain_primary", args=[store.pk, row.pk]), follow=True).content.decode()
    assert "The primary name is unchanged" in primary
    removed = client.post(reverse("stores:domain_remove", args=[store.pk, row.pk]), follow=True)
    assert removed.redirect_chain[-1][0] == detail and "Domain removed." in removed.content.decode()
    assert not store.names.filter(name="merchant.example").exists()
    assert store.events.filter(actor=customer, note="name merchant.example removed").exists()


@pytest.mark.django_db
def test_staff_add_and_remove_a_domain_through_the_same_services(client, staff_user, user_factory, woo_plan):
    store = store_create(customer=user_factory(), plan=woo_plan, site_title="Staff Shop")
    client.force_login(staff_user)
    url = reverse("admin:stores_store_names", args=[store.pk])
    client.post(url, {"action": "add", "domain": "staff.example", "include_www": "on"})
    row = store.names.get(name="staff.example")
    assert row.status == N.PENDING and store.names.filter(name="www.staff.example").exists()
    page = client.get(url).content.decode()
    assert f"_shophosting-challenge.staff.example</code> = <code>{row.proof_token}" in page
    refused = client.post(url, {"action": "add", "domain": "staff.example"}, follow=True).content.decode()
    assert "already one of this store&#x27;s names" in refused
    primary = client.post(url, {"action": "primary", "name": row.pk}, follow=True).content.decode()
    assert "can be changed once the store is live" in primary
    client.post(url, {"action": "remove", "name": row.pk})
    assert not store.names.filter(name="staff.example").exists()
    assert store.events.filter(actor=staff_user, note="name staff.example removed").exists()


def test_the_vhost_proxies_the_primary_name_and_redirects_the_others_to_it(settings):
    settings.NGINX_LISTEN_HTTP, settings.NGINX_LISTEN_HTTPS = "80", "443"
    values = {
        "store_id": 7,
        "names": ["shop.example", "www.shop.example", "ada.hosting.example"],
        "upstream": "127.0.0.1:20001",
        "mode": "proxy",
        "firewall": False,
        "listen_http": "80",
        "listen_https": "443",
        "acme_webroot": "/srv/acme",
        "tls_cert": "/tls/fullchain.pem",
        "tls_key": "/tls/privkey.pem",
    }
    vhost = proxy.vhost_render(**values, primary="shop.example")
    assert vhost.count("proxy_pass") == 1 and "server_name shop.example;" in vhost  # only the primary is served
    # The others: 301 to the same path on the primary, on HTTP (ACME path excepted) and on HTTPS.
    assert vhost.count("server_name www.shop.example ada.hosting.example;") == 2
    assert vhost.count("return 301 https://shop.example$request_uri;") == 2
    assert vhost.count("return 301 https://$host$request_uri;") == 1  # the primary's own HTTP to HTTPS
    # A primary not on the certificate (yet): the others go to it on plain HTTP, and nothing is on HTTPS.
    plain = proxy.vhost_render(**{**values, "tls_cert": None, "tls_key": None}, primary="shop.example")
    assert "return 301 http://shop.example$request_uri;" in plain and "ssl" not in plain
    with pytest.raises(Exception, match="primary name 'gone.example' is not served"):
        proxy.vhost_render(**values, primary="gone.example")


# --- DNS through pebble-challtestsrv, no store containers (under the lock: it starts with pebble) -----------


@pytest.mark.docker
@pytest.mark.django_db
def test_an_address_at_the_platform_proves_a_domain_and_brings_an_unreachable_one_back(
    user_factory, woo_plan, acme_server
):
    store = store_create(customer=user_factory(), plan=woo_plan, domain="comeback.test", site_title="Comeback")
    [pending] = store_domain_add(store_id=store.pk, domain="pointed.test", include_www=False)
    store_names_tls_result(store_id=store.pk, issued=[], failed={"comeback.test": "NXDOMAIN"}, max_failures=1)
    assert store.names.get(name="comeback.test").status == N.UNREACHABLE
    # challtestsrv answers 127.0.0.1 for every name by default: not the platform's address (192.0.2.80).
    assert store_names_check(store_id=store.pk) == []
    assert (
        "Not proven yet: no TXT record _shophosting-challenge.pointed.test"
        in store.names.get(pk=pending.pk).status_message
    )
    for name in ("pointed.test", "comeback.test"):
        a_set(name, "192.0.2.80")
    try:
        assert stores_names_check_due() >= 2  # the periodic check (rqcron): pending and unreachable names
    finally:
        for name in ("pointed.test", "comeback.test"):
            a_clear(name)
    assert set(store.names.filter(kind="custom").values_list("status", flat=True)) == {N.ACTIVE}
    assert store.names.get(name="pointed.test").checked_at is not None
    assert not store.jobs.exists()  # awaiting payment: provisioning serves its names, no job of its own


# --- on the real proxy: one provisioned store, walked in order (Docker; under the lock) --------------------


@pytest.fixture(scope="module")
def proven_store(
    django_db_setup, django_db_blocker, docker_engine, store_images, nginx_server, acme_server, restic_repository
):
    """A WooCommerce store on its platform name, provisioned once for this module with real commits; its
    containers, vhost, certificate and rows are removed afterwards."""
    from accounts.services import customer_create
    from billing.models import Plan
    from billing.services.plans import plan_catalogue_seed
    from provisioning import docker_client
    from provisioning.orders import store_order_paid
    from tests.plugins.docker import _store_vhosts_remove
    from tests.plugins.rq import _burst

    label = f"shophosting.env={settings.STORE_OBJECT_PREFIX}"
    with django_db_blocker.unblock():
        docker_client.labelled_objects_remove(label=label)
        _store_vhosts_remove()
        plan_catalogue_seed()
        customer = customer_create(email="proven-owner@example.com", password="correct horse battery")
        store = store_create(
            customer=customer, plan=Plan.objects.get(slug="woocommerce-commerce-core"), site_title="Proven Shop"
        )
        job = store_order_paid(store_id=store.pk)
        _burst("provisioning")
        _burst("backups")  # its first backup, queued when it went live: until it ran, the store is busy
        job.refresh_from_db()
        store.refresh_from_db()
        assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
        try:
            yield store
        finally:
            for name in (DOMAIN, WWW):
                a_clear(name)
            txt_clear(f"_shophosting-challenge.{DOMAIN}")
            proxy.vhost_remove(domain=store.proxy_key)
            acme_client.certificate_remove(domain=store.proxy_key)
            docker_client.labelled_objects_remove(label=label)
            from accounts.models import User

            users = User.objects.filter(email__in=["proven-owner@example.com", "proven-rival@example.com"])
            for each in Store.objects.filter(customer__in=users):
                each.backup_runs.all().delete()
                each.delete()
            users.delete()


def run_jobs():
    from tests.plugins.rq import _burst

    _burst("provisioning")


@pytest.mark.docker
def test_a_custom_domain_stays_inactive_until_its_txt_record_is_set_then_gets_a_certificate_with_its_www_alias(
    proven_store, acme_server
):
    store = proven_store
    platform = store.names.get(kind=StoreName.Kind.PLATFORM).name
    assert store.domain == platform and store.tls_status == Store.TLS.ISSUED

    apex, www = store_domain_request(store_id=store.pk, domain=DOMAIN.upper())  # checked at once: nothing yet
    assert (apex.name, www.name) == (DOMAIN, WWW) and apex.proof_token == www.proof_token
    for row in store.names.filter(name__in=[DOMAIN, WWW]):
        assert row.status == N.PENDING and row.served_name is None and row.checked_at is not None
        assert "Not proven yet" in row.status_message
    assert not store.jobs.filter(kind=ProvisioningJob.Kind.HTTPS_SETTINGS).exists()
    assert not_served(DOMAIN) and not_served(WWW)
    assert DOMAIN not in acme_client.certificate_names(domain=store.proxy_key)

    txt_set(apex.proof_record, "someone else's token")  # a wrong record proves nothing
    assert store_names_check(store_id=store.pk) == []
    txt_set(apex.proof_record, apex.proof_token)
    assert sorted(store_names_check(store_id=store.pk)) == [DOMAIN, WWW]
    job = store.jobs.get(kind=ProvisioningJob.Kind.HTTPS_SETTINGS)
    run_jobs()
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    assert sorted(acme_client.certificate_names(domain=store.proxy_key)) == sorted([platform, DOMAIN, WWW])

    # The platform name is still primary: both new names redirect there, HTTP to HTTPS in one hop, the ACME
    # path excepted; HTTPS on them redirects as well, with the certificate naming them.
    for name in (DOMAIN, WWW):
        redirect = http_get(name, "/shop/?p=1")
        assert redirect.status == 301
        assert redirect.getheader("Location") == f"https://{platform}:{HTTPS_PORT}/shop/?p=1"
        secure = https_get(name, "/cart/", trusted_root=acme_server)
        assert secure.status == 301 and secure.getheader("Location") == f"https://{platform}:{HTTPS_PORT}/cart/"
        assert sorted(secure.peer_cert_names) == sorted([platform, DOMAIN, WWW])
        assert http_get(name, "/.well-known/acme-challenge/missing").status == 404
    assert https_get(platform, trusted_root=acme_server).status == 200


@pytest.mark.docker
def test_after_a_primary_name_change_the_wordpress_front_page_shows_the_new_url_and_old_links_redirect(
    proven_store, acme_server
):
    store = proven_store
    platform = store.names.get(kind=StoreName.Kind.PLATFORM).name
    # A serialized option holding an old URL: its string length changes with the name (serialized-safe).
    old_url = f"https://{platform}/logo.png"
    serialized = f'a:1:{{s:4:"logo";s:{len(old_url)}:"{old_url}";}}'
    insert = "INSERT INTO wp_options (option_name, option_value) VALUES ('{}', '{}')"  # the test's own values
    sql(store, insert.format("shophosting_test_logo", serialized))
    # A host that only starts like an old name is not touched.
    sql(store, insert.format("shophosting_test_other", f"https://{platform}.other.test/"))

    with pytest.raises(ValidationError, match="not one of this store's"):
        store_primary_change(store_id=store.pk, name_id=999_999)
    job = store_primary_change(store_id=store.pk, name_id=store.names.get(name=DOMAIN).pk)
    run_jobs()
    job.refresh_from_db()
    store.refresh_from_db()
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    assert store.domain == store.live_domain == DOMAIN and store.names.get(is_primary=True).name == DOMAIN

    front = https_get(DOMAIN, trusted_root=acme_server)
    assert front.status == 200 and "Proven Shop" in front.text
    assert f"https://{DOMAIN}/" in front.text and platform not in front.text

    # Old links keep working: every other name answers 301 to the same path on the primary name.
    for name in (platform, WWW):
        assert http_get(name, "/?p=1").getheader("Location") == f"https://{DOMAIN}:{HTTPS_PORT}/?p=1"
        moved = https_get(name, "/?p=1", trusted_root=acme_server)
        assert moved.status == 301 and moved.getheader("Location") == f"https://{DOMAIN}:{HTTPS_PORT}/?p=1"
    assert http_get(DOMAIN, "/a").getheader("Location") == f"https://{DOMAIN}:{HTTPS_PORT}/a"

    new_url = f"https://{DOMAIN}/logo.png"
    stored = sql(store, "SELECT option_value FROM wp_options WHERE option_name='shophosting_test_logo'")
    assert stored == f'a:1:{{s:4:"logo";s:{len(new_url)}:"{new_url}";}}'
    other = sql(store, "SELECT option_value FROM wp_options WHERE option_name='shophosting_test_other'")
    assert other == f"https://{platform}.other.test/"
    assert sql(store, "SELECT option_value FROM wp_options WHERE option_name='home'") == f"https://{DOMAIN}"
    assert DOMAIN in sql(store, "SELECT guid FROM wp_posts ORDER BY ID LIMIT 1")


@pytest.mark.docker
def test_a_second_account_cannot_claim_or_block_the_domain_another_account_proved(proven_store):
    from accounts.services import customer_create

    rival = customer_create(email="proven-rival@example.com", password="correct horse battery")
    rival_store = store_create(customer=rival, plan=proven_store.plan, site_title="Rival")
    with pytest.raises(ValidationError, match="already in use by another store"):
        store_domain_add(store_id=rival_store.pk, domain=DOMAIN)
    # Nor through signup: the form refuses it, and the proven name stays where it is.
    from billing.forms import StoreDomainField

    with pytest.raises(ValidationError, match="already in use by another store"):
        StoreDomainField().clean(WWW)
    assert StoreName.objects.get(served_name=DOMAIN).store_id == proven_store.pk
    assert https_get(DOMAIN, trusted_root=pebble_root()).status == 200


def pebble_root() -> str:
    from tests.test_provisioning import pebble_root as root

    return root()


@pytest.mark.django_db
def test_a_primary_name_change_sets_magentos_base_urls_verified_on_the_stand_in_image_only(
    user_factory, woo_plan, tmp_path
):
    """MagentoStack's commands run through the stand-in's own bin/magento (deploy/images/magento-standin-web),
    which records config:set as Magento's core_config_data would; a real Magento is not available here."""
    import importlib.util
    import json

    from billing.models import Plan
    from provisioning.image_contract import MAGENTO_CLI
    from provisioning.stacks import stack_for
    from stores.names import store_primary_set

    path = settings.BASE_DIR / "deploy" / "images" / "magento-standin-web" / "standin.py"
    spec = importlib.util.spec_from_file_location("magento_standin_urls", path)
    standin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standin)
    standin.STATE = str(tmp_path / "standin-install.json")
    plan = Plan.objects.get(slug="magento-commerce-core")  # woo_plan seeded the whole catalogue
    store = store_create(customer=user_factory(), plan=plan, site_title="Mage Shop")
    (tmp_path / "standin-install.json").write_text(json.dumps({"title": "Mage Shop", "base_url": "x"}))
    [row, _] = store_domain_add(store_id=store.pk, domain="mage.example")
    store_name_check_record(name_id=row.pk, records=NameRecords("mage.example", (row.proof_token,), frozenset()))
    store_primary_set(store_id=store.pk, name_id=row.pk)
    store.refresh_from_db()

    commands = stack_for(store).url_replace_commands(old_names=[store.names.get(kind="platform").name])
    for argv, environment in commands:
        assert argv[0] == MAGENTO_CLI and environment == {}
        assert standin.cli(argv[1:]) == 0
    state = json.loads((tmp_path / "standin-install.json").read_text())
    assert state["base_url"] == "http://mage.example/"  # no certificate yet: the store's scheme is http
    assert state["secure_base_url"] == "https://mage.example/"


@pytest.mark.docker
@pytest.mark.django_db
def test_a_store_from_before_proxy_keys_has_its_vhost_taken_over_in_one_nginx_change(nginx_server, store_in_status):
    """Its vhost was named after its signup domain: the next write names it store-<id> and drops the old file
    in the same change (two files serving one name would leave nginx on the first it loaded)."""
    from provisioning.services import store_vhost_write
    from stores.services import store_place

    store = store_place(store_id=store_in_status("active", domain="legacy-keys.test").pk)
    upstream = f"{store.host.bind_address}:{store.port}"
    proxy.vhost_write(store_id=store.pk, domain=store.domain, upstream=upstream, firewall=False)
    other = proxy.vhost_write(store_id=store.pk + 1, domain="not-this-store.test", upstream=upstream, firewall=False)
    try:
        store_vhost_write(store=store, mode="proxy")
        assert not proxy.vhost_path(store.domain).exists()
        assert "legacy-keys.test" in proxy.vhost_path(store.proxy_key).read_text()
        assert http_get("legacy-keys.test").status == 502  # routed by the new file (no container runs here)
        # A file under a domain that another store's header claims is never touched.
        assert proxy.vhost_belongs(domain="not-this-store.test", store_id=store.pk) is False and other.exists()
    finally:
        proxy.vhost_remove(domain=store.proxy_key)
        proxy.vhost_remove(domain="not-this-store.test")
