"""Every customer URL that takes an object id answers another customer's id with the same 404 as a missing
one. The URL patterns are read from the resolver, so a new pattern with an id fails here until it is covered."""

import re

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver

from backups.models import BackupRun, RestoreExport, RestoreRun
from backups.services.store_import import upload_start
from billing.models import Subscription
from consultations.models import TicketAttachment
from consultations.services import ticket_create
from provisioning.services import job_enqueue

pytestmark = pytest.mark.django_db
# Apps whose pages belong to customers (the rest are public pages, staff admin, webhooks or health checks).
CUSTOMER_NAMESPACES = {"stores", "backups", "billing", "consultations", "accounts"}


def customer_patterns():
    """(namespace:name, route, parameter names) of every customer URL pattern with parameters."""
    found = []

    def walk(patterns, prefix="", namespace=None):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern), entry.namespace or namespace)
            elif isinstance(entry, URLPattern) and namespace in CUSTOMER_NAMESPACES:
                route = prefix + str(entry.pattern)
                parameters = sorted(set(re.findall(r"<(?:\w+:)?(\w+)>", route)))
                if parameters:
                    found.append((f"{namespace}:{entry.name}", route, parameters))

    walk(get_resolver().url_patterns)
    return found


@pytest.fixture
def victim_objects(user_factory, woo_plan, store_in_status):
    victim = user_factory(email="victim@example.com")
    store = store_in_status("active", customer=victim, domain="victim.test")
    subscription = Subscription.objects.create(customer=victim, plan=woo_plan)
    run = BackupRun.objects.create(store=store, kind="manual", status="succeeded", snapshot_id="d" * 64)
    with transaction.atomic():  # as restore_request records one once restic has confirmed the snapshot
        job = job_enqueue(store_id=store.pk, kind="restore", skip={"files": "only the database is restored"})
        restore = RestoreRun.objects.create(store=store, snapshot_id=run.snapshot_id, scope="db", job=job)
    export = RestoreExport.objects.create(
        store=store, backup_run=run, snapshot_id=run.snapshot_id, status="succeeded", file_name="store-x/changes.zip"
    )
    upload = upload_start(store_id=store.pk, part="database", filename="shop.sql", size=10)
    ticket = ticket_create(
        customer=victim,
        category="other",
        subject="Private",
        body="victim's words",
        attachments=[SimpleUploadedFile("notes.txt", b"victim's file")],
    )
    return {
        "store_id": store.pk,
        "subscription_id": subscription.pk,
        "snapshot_id": run.snapshot_id,
        "restore_id": restore.pk,
        "export_id": export.pk,
        "job_id": job.pk,
        "number": ticket.number,
        "attachment_id": TicketAttachment.objects.get().pk,
        "name_id": store.names.get(kind="custom").pk,
        "upload_id": upload.pk,
    }


MISSING = {
    "store_id": 999_999,
    "subscription_id": 999_999,
    "snapshot_id": "e" * 64,
    "restore_id": 999_999,
    "export_id": 999_999,
    "job_id": 999_999,
    "number": "TKT-999999",
    "attachment_id": 999_999,
    "name_id": 999_999,
    "upload_id": 999_999,
}
# Not object ids: /signup/<plan>/ is public, and reset or e-mail-change links carry signed tokens
# (tested in test_portal.py: forged or reused tokens are refused).
PUBLIC_PARAMETERS = {"plan_slug", "uidb64", "token"}


def same(content: bytes) -> bytes:
    """A page without what differs on every response anyway (the CSP nonce, the CSRF token)."""
    content = re.sub(rb'nonce="[^"]*"', b'nonce=""', content)
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b'name="csrfmiddlewaretoken"', content)


def build(route: str, values: dict) -> str:
    url = "/" + route
    for name, value in values.items():
        for converter in ("int", "str", "slug"):
            url = url.replace(f"<{converter}:{name}>", str(value))
    return url


def test_every_customer_url_answers_another_customers_ids_like_missing_ones(client, user_factory, victim_objects):
    patterns = customer_patterns()
    covered = [p for p in patterns if not set(p[2]) <= PUBLIC_PARAMETERS]
    assert len(covered) >= 12, [p[0] for p in covered]  # the walk found the customer pages
    client.force_login(user_factory(email="intruder@example.com"))

    for name, route, parameters in covered:
        unknown = set(parameters) - set(victim_objects) - PUBLIC_PARAMETERS
        assert not unknown, f"{name} takes {unknown}: add them to this test"
        foreign_url, missing_url = build(route, victim_objects), build(route, MISSING)
        for method in ("get", "post"):
            cache.delete_pattern("*")  # the backup pages' rate limit counts these attempts; here each must be seen
            foreign = getattr(client, method)(foreign_url)
            missing = getattr(client, method)(missing_url)
            assert foreign.status_code in (404, 405), f"{method.upper()} {foreign_url} ({name}): {foreign.status_code}"
            assert (foreign.status_code, same(foreign.content)) == (missing.status_code, same(missing.content)), name
    # Nothing was created for the intruder by any of those requests.
    assert BackupRun.objects.count() == 1 and RestoreRun.objects.count() == 1 and RestoreExport.objects.count() == 1


def test_staff_only_pages_refuse_customers(client, user_factory, settings):
    client.force_login(user_factory(email="customer@example.com"))
    for path in (f"/{settings.ADMIN_URL}", "/django-rq/", f"/{settings.WAGTAIL_ADMIN_URL}"):
        response = client.get(path)
        assert response.status_code in (302, 403), path
        if response.status_code == 302:
            assert "login" in response["Location"], path  # sent to the staff sign-in, not let in
