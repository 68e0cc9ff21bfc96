"""Staff pricing: the "Sync to Stripe" choice page, price immutability, sync status and drift from Stripe."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.roles import Role
from accounts.services import staff_user_ensure
from billing.models import Plan
from billing.selectors import SyncStatus, plan_sync_status
from tests.billing_helpers import paid_signup

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:billing_plan_changelist")


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def sync(admin_client, plan: Plan, mode: str | None = None):
    data = {"action": "sync_to_stripe", "_selected_action": [plan.pk]}
    if mode:
        data.update(apply="Sync to Stripe", mode=mode)
    return admin_client.post(CHANGELIST, data, follow=bool(mode))


def test_sync_action_opens_a_choice_page_and_create_new_price_creates_product_and_price(
    admin_client, woo_plan, stripe_api
):
    assert plan_sync_status(woo_plan) == (SyncStatus.MISSING, [])

    choice = sync(admin_client, woo_plan)
    assert choice.status_code == 200
    assert "Create new price" in choice.content.decode() and "Update existing" in choice.content.decode()
    assert not stripe_api.calls  # nothing is sent before staff choose

    done = sync(admin_client, woo_plan, mode="create_price")

    woo_plan.refresh_from_db()
    price = stripe_api.objects[woo_plan.stripe_price_id]
    product = stripe_api.objects[woo_plan.stripe_product_id]
    assert (price["unit_amount"], price["currency"], price["recurring"]["interval"]) == (9900, "usd", "month")
    assert price["product"] == product["id"] and product["default_price"] == price["id"]
    assert product["name"] == "WooCommerce Commerce Core"
    assert product["metadata"]["plan"] == woo_plan.slug
    assert plan_sync_status(woo_plan) == (SyncStatus.IN_SYNC, [])
    assert "synced to Stripe" in done.content.decode()
    assert "In sync" in admin_client.get(CHANGELIST).content.decode()


def test_an_amount_change_is_refused_by_update_and_create_new_archives_the_old_price(
    admin_client, priced_plan, stripe_api, stripe_webhook
):
    subscription, stripe_subscription = paid_signup(Client(), priced_plan, stripe_api, stripe_webhook)
    old_price_id = priced_plan.stripe_price_id
    Plan.objects.filter(pk=priced_plan.pk).update(price_monthly=109)
    plan = Plan.objects.get(pk=priced_plan.pk)
    assert plan_sync_status(plan) == (SyncStatus.LOCAL_CHANGED, ["amount_cents"])
    assert "Local changes not in Stripe (amount_cents)" in admin_client.get(CHANGELIST).content.decode()
    prices_before = len(stripe_api.requests_to("POST", "prices"))

    refused = sync(admin_client, plan, mode="update")

    body = refused.content.decode()
    assert "Stripe prices cannot be edited once created" in body and "Create new price" in body
    assert len(stripe_api.requests_to("POST", "prices")) == prices_before  # nothing was sent
    assert Plan.objects.get(pk=plan.pk).stripe_price_id == old_price_id

    sync(admin_client, plan, mode="create_price")

    plan.refresh_from_db()
    new_price = stripe_api.objects[plan.stripe_price_id]
    assert plan.stripe_price_id != old_price_id and new_price["unit_amount"] == 10900
    assert stripe_api.objects[plan.stripe_product_id]["default_price"] == new_price["id"]
    assert stripe_api.objects[old_price_id]["active"] is False
    assert plan_sync_status(plan) == (SyncStatus.IN_SYNC, [])
    # Existing subscriptions keep their price until staff migrate them.
    item = stripe_api.objects[stripe_subscription["id"]]["items"]["data"][0]
    assert item["price"]["id"] == old_price_id

    admin_client.post(CHANGELIST, {"action": "migrate_subscriptions", "_selected_action": [plan.pk]})

    assert item["price"]["id"] == new_price["id"]
    [change] = stripe_api.requests_to("POST", f"subscriptions/{stripe_subscription['id']}")
    assert change["proration_behavior"] == "none"


def test_update_existing_sends_name_description_and_active(admin_client, priced_plan, stripe_api):
    Plan.objects.filter(pk=priced_plan.pk).update(name="Core", description="One store, done right.", active=False)
    plan = Plan.objects.get(pk=priced_plan.pk)
    assert plan_sync_status(plan)[0] == SyncStatus.LOCAL_CHANGED

    sync(admin_client, plan, mode="update")

    product = stripe_api.objects[plan.stripe_product_id]
    price = stripe_api.objects[plan.stripe_price_id]
    assert (product["name"], product["description"]) == ("WooCommerce Core", "One store, done right.")
    assert (price["nickname"], price["active"]) == ("Core", False)
    plan.refresh_from_db()
    assert plan_sync_status(plan) == (SyncStatus.IN_SYNC, [])


def test_drift_made_in_stripe_shows_in_the_plan_list(admin_client, priced_plan, stripe_api, stripe_webhook):
    product = stripe_api.objects[priced_plan.stripe_product_id]
    product["name"] = "Renamed in the Stripe dashboard"

    response = stripe_webhook.post(stripe_api.event("product.updated", product, previous={"name": "old"}))

    assert response.status_code == 200
    priced_plan.refresh_from_db()
    assert plan_sync_status(priced_plan) == (SyncStatus.STRIPE_CHANGED, ["name"])
    assert "Changed in Stripe (name)" in admin_client.get(CHANGELIST).content.decode()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.SUPPORT])
def test_only_super_admins_change_pricing(client, woo_plan, stripe_api, role):
    user, _ = staff_user_ensure(email=f"{role}@example.com", role=role, password="staff password 123")
    client.force_login(user)

    listing = client.get(CHANGELIST)
    response = client.post(CHANGELIST, {"action": "sync_to_stripe", "_selected_action": [woo_plan.pk]}, follow=True)

    assert listing.status_code == 200 and "Sync to Stripe" not in listing.content.decode()
    # The action is not offered to them, so posting it only shows the list again.
    assert "Sync plans to Stripe" not in response.content.decode()
    assert not stripe_api.calls
