"""Stores: domain validation, encrypted credentials, the status machine and race-free placement."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured, ValidationError

from stores import crypto
from stores.domains import domain_normalize
from stores.exceptions import InvalidTransition, NoCapacity
from stores.models import Host, Store, StoreEvent
from stores.services import (
    store_create,
    store_credentials,
    store_credentials_save,
    store_place,
    store_transition,
)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Shop.Example.com", "shop.example.com"),
        ("shop.example.com.", "shop.example.com"),
        ("my-shop-2.example.co.uk", "my-shop-2.example.co.uk"),
        ("1shop.123.example.com", "1shop.123.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("  www.customer-shop.com ", "www.customer-shop.com"),
    ],
)
def test_valid_domains_are_normalised(typed, expected):
    assert domain_normalize(typed) == expected


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "Enter your store's domain"),
        ("*.example.com", "Wildcard"),
        ("203.0.113.9", "not an IP address"),
        ("::1", "not an IP address"),
        ("https://shop.example.com/", "without http://"),
        ("shop.example.com:8080", "without http://"),
        ("localhost", "full domain with a dot"),
        ("-shop.example.com", "not starting or ending with a hyphen"),
        ("shop_.example.com", "not a valid"),
        ("a" * 64 + ".example.com", "63 characters"),
        (".".join(["a" * 60] * 5), "253 characters"),
        ("shop.example.123", "only digits"),
        ("shophosting.local", "belongs to the platform"),
        ("evil.shophosting.local", "belongs to the platform"),
        ("shop;rm -rf.example.com", "not a valid"),
    ],
)
def test_invalid_domains_get_a_clear_reason(typed, reason):
    with pytest.raises(ValidationError) as error:
        domain_normalize(typed)
    assert reason in " ".join(error.value.messages)


def test_credentials_are_encrypted_at_rest_and_rotate(settings, db, user_factory, woo_plan):
    store = store_create(customer=user_factory(), plan=woo_plan, domain="crypt.example.com")
    store_credentials_save(store_id=store.pk, credentials={"db_password": "s3cret-value"})
    store.refresh_from_db()
    assert "s3cret-value" not in store.credentials_encrypted
    assert store_credentials(store) == {"db_password": "s3cret-value"}

    old_key = settings.CREDENTIALS_KEY
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIALS_KEY = f"{new_key},{old_key}"  # new key first; old still decrypts
    assert store_credentials(store) == {"db_password": "s3cret-value"}
    rotated = crypto.rotate(store.credentials_encrypted)
    settings.CREDENTIALS_KEY = new_key  # old key removed
    assert crypto.decrypt(rotated) == {"db_password": "s3cret-value"}
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        crypto.decrypt(store.credentials_encrypted)


@pytest.mark.django_db
class TestStatusMachine:
    def test_every_change_is_an_event_and_illegal_edges_are_refused(self, user_factory, woo_plan):
        store = store_create(customer=user_factory(), plan=woo_plan, domain="fsm.example.com")
        store_transition(store_id=store.pk, to=Store.Status.QUEUED)
        store_transition(store_id=store.pk, to=Store.Status.PROVISIONING)
        with pytest.raises(InvalidTransition):
            store_transition(store_id=store.pk, to=Store.Status.SUSPENDED)
        store_transition(store_id=store.pk, to=Store.Status.ACTIVE)
        store_transition(store_id=store.pk, to=Store.Status.SUSPENDED)
        store_transition(store_id=store.pk, to=Store.Status.ACTIVE)
        events = list(StoreEvent.objects.filter(store=store).values_list("old_status", "new_status"))
        assert events == [
            ("", "awaiting_payment"),
            ("awaiting_payment", "queued"),
            ("queued", "provisioning"),
            ("provisioning", "active"),
            ("active", "suspended"),
            ("suspended", "active"),
        ]

    def test_a_domain_is_unique_among_live_stores_only(self, user_factory, woo_plan):
        first = store_create(customer=user_factory(), plan=woo_plan, domain="taken.example.com")
        with pytest.raises(ValidationError, match="already used"):
            store_create(customer=user_factory(), plan=woo_plan, domain="TAKEN.example.com")
        store_transition(store_id=first.pk, to=Store.Status.DELETING)
        store_transition(store_id=first.pk, to=Store.Status.DELETED)
        assert store_create(customer=user_factory(), plan=woo_plan, domain="taken.example.com").pk != first.pk


@pytest.mark.django_db
class TestPlacement:
    def test_stores_get_distinct_ports_and_keep_them(self, user_factory, woo_plan):
        stores = [store_create(customer=user_factory(), plan=woo_plan, domain=f"p{i}.example.com") for i in range(3)]
        ports = [store_place(store_id=s.pk).port for s in stores]
        assert len(set(ports)) == 3
        assert store_place(store_id=stores[0].pk).port == ports[0]  # idempotent

    def test_a_host_without_capacity_is_skipped_and_none_left_is_an_error(self, user_factory, woo_plan):
        Host.objects.update(memory_capacity_mb=2048)  # one WooCommerce stack reserves 1 GB + 768 MB
        first = store_create(customer=user_factory(), plan=woo_plan, domain="cap1.example.com")
        store_transition(store_id=first.pk, to=Store.Status.QUEUED)
        store_place(store_id=first.pk)
        second = store_create(customer=user_factory(), plan=woo_plan, domain="cap2.example.com")
        with pytest.raises(NoCapacity):
            store_place(store_id=second.pk)
