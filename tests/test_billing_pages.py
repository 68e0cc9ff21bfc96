"""The customer's billing page, the Stripe Customer Portal, adding stores on multi-store plans, and the
staff billing overview with known answers."""

import datetime as dt

import pytest
import stripe
import time_machine
from django.test import Client
from django.urls import reverse
from djstripe import models as djstripe_models

from billing.models import Plan, Subscription
from billing.selectors import billing_overview
from billing.services.plans import plan_price_create
from provisioning.models import ProvisioningJob
from tests.billing_helpers import paid_signup

pytestmark = pytest.mark.django_db


def test_billing_page_shows_plan_next_charge_invoices_and_opens_the_portal(
    client, priced_plan, stripe_api, stripe_webhook
):
    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    stripe_webhook.post(stripe_api.event("customer.subscription.created", stripe_subscription))
    invoice = stripe_api.invoice(subscription=stripe_subscription, status="paid")
    assert stripe_webhook.post(stripe_api.event("invoice.paid", invoice)).status_code == 200

    page = client.get(reverse("billing:page")).content.decode()

    assert "WooCommerce Commerce Core" in page and "Active" in page
    assert "Next charge: <strong>$99.00</strong> on 1 February 2026" in page
    assert invoice["number"] in page
    assert invoice["hosted_invoice_url"] in page and invoice["invoice_pdf"] in page
    assert "Open the billing portal" in page
    assert "Add a store" not in page  # a single-store plan

    portal = client.post(reverse("billing:portal"))

    assert portal.status_code == 302 and portal["Location"].startswith("https://billing.stripe.com/p/session/")
    [sent] = stripe_api.requests_to("POST", "billing_portal/sessions")
    assert sent["customer"] == subscription.stripe_customer_id
    assert sent["return_url"] == "http://testserver/billing/"


def test_another_customers_billing_is_never_visible(client, priced_plan, stripe_api, stripe_webhook):
    subscription, stripe_subscription = paid_signup(client, priced_plan, stripe_api, stripe_webhook)
    invoice = stripe_api.invoice(subscription=stripe_subscription, status="paid")
    stripe_webhook.post(stripe_api.event("invoice.paid", invoice))
    other = Client()
    paid_signup(other, priced_plan, stripe_api, stripe_webhook, email="other@example.com", domain="other.test")

    page = other.get(reverse("billing:page")).content.decode()

    assert invoice["number"] not in page and "shop.example.com" not in page
    assert other.get(reverse("billing:store_add", args=[subscription.pk])).status_code == 404
    assert other.post(reverse("billing:checkout_resume", args=[subscription.pk])).status_code == 404


def test_multi_store_plan_adds_stores_up_to_its_limit_and_no_further(client, stripe_api, stripe_webhook, woo_plan):
    multi = plan_price_create(plan_id=Plan.objects.get(slug="woocommerce-multi-store").pk)
    subscription, _ = paid_signup(client, multi, stripe_api, stripe_webhook)
    assert "Add a store" in client.get(reverse("billing:page")).content.decode()
    assert "1 of 5 stores in use" in client.get(reverse("accounts:home")).content.decode()
    add_url = reverse("billing:store_add", args=[subscription.pk])

    for n in range(2, 6):
        response = client.post(add_url, {"domain": f"shop{n}.example.com", "site_title": f"Shop {n}"})
        assert response.status_code == 302, response.content.decode()[:1500]
    refused = client.post(add_url, {"domain": "shop6.example.com"})

    assert "includes 5 stores, and all are in use" in refused.content.decode()
    assert subscription.stores.count() == 5
    assert ProvisioningJob.objects.filter(store__subscription=subscription).count() == 5  # each is queued
    assert "Add a store" not in client.get(reverse("billing:page")).content.decode()
    assert "Add a store" not in client.get(reverse("accounts:home")).content.decode()


def test_a_single_store_plan_refuses_a_second_store(client, priced_plan, stripe_api, stripe_webhook):
    subscription, _ = paid_signup(client, priced_plan, stripe_api, stripe_webhook)

    refused = client.post(reverse("billing:store_add", args=[subscription.pk]), {"domain": "second.example.com"})

    assert "includes 1 store, and all are in use" in refused.content.decode()
    assert subscription.stores.count() == 1


# The staff overview, on fixtures with known answers. "Now" is fixed at 15 November 2026.
NOW = dt.datetime(2026, 11, 15, 12, tzinfo=dt.UTC)


def _ts(*args) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def overview_fixtures(stripe_api, woo_plan):
    core = plan_price_create(plan_id=woo_plan.pk)  # $99/month
    pro = plan_price_create(plan_id=Plan.objects.get(slug="woocommerce-commerce-pro").pk)  # $149/month
    _, yearly = stripe_api.product_with_price(name="Legacy yearly", amount_cents=118800, interval="year")
    core_price = stripe_api.objects[core.stripe_price_id]
    pro_price = stripe_api.objects[pro.stripe_price_id]
    customer = stripe_api.add("customer")["id"]
    subscriptions = [
        stripe_api.subscription(customer=customer, price=core_price),  # 9 900 a month
        stripe_api.subscription(customer=customer, price=yearly),  # 118 800 a year: 9 900 a month
        stripe_api.subscription(customer=customer, price=pro_price, status="past_due", quantity=2),  # 29 800
        stripe_api.subscription(customer=customer, price=pro_price, status="canceled"),  # not recurring revenue
        stripe_api.subscription(customer=customer, price=core_price, status="trialing"),  # not paying yet
    ]
    invoices = [
        stripe_api.invoice(subscription=subscriptions[0], status_transitions={"paid_at": _ts(2026, 11, 2)}),
        stripe_api.invoice(subscription=subscriptions[2], status_transitions={"paid_at": _ts(2026, 11, 10)}),
        stripe_api.invoice(subscription=subscriptions[0], status_transitions={"paid_at": _ts(2026, 10, 28)}),
        stripe_api.invoice(subscription=subscriptions[2], status="open", status_transitions={"paid_at": None}),
    ]
    # Into dj-stripe's mirror, as stripe-python objects (what dj-stripe receives from the API).
    for subscription in subscriptions:
        djstripe_models.Subscription.sync_from_stripe_data(stripe.Subscription.construct_from(subscription, "sk"))
    for invoice in invoices:
        invoice["created"] = invoice["status_transitions"]["paid_at"] or _ts(2026, 11, 12)
        djstripe_models.Invoice.sync_from_stripe_data(stripe.Invoice.construct_from(invoice, "sk"))
    return core, pro


def test_billing_overview_known_answers(overview_fixtures, user_factory):
    core, pro = overview_fixtures
    late = Subscription.objects.create(
        customer=user_factory(email="late@example.com"),
        plan=pro,
        status=Subscription.Status.PAST_DUE,
        past_due_since=NOW - dt.timedelta(days=5, hours=3),
    )

    with time_machine.travel(NOW, tick=False):
        overview = billing_overview()

    assert overview.mrr_cents == 49_600  # 9 900 + 9 900 + 29 800
    assert overview.revenue_this_month_cents == 9_900 + 29_800  # October's and the open invoice are not counted
    assert overview.subscriptions_by_status == {"active": 2, "canceled": 1, "past_due": 1, "trialing": 1}
    by_plan = {label: (count, mrr) for label, count, mrr in overview.subscriptions_by_plan}
    assert by_plan == {
        "WooCommerce Commerce Pro": (1, 29_800),
        "WooCommerce Commerce Core": (1, 9_900),
        "Legacy yearly": (1, 9_900),  # a price with no plan is shown by its nickname or product
    }
    assert overview.subscriptions_by_plan[0][0] == "WooCommerce Commerce Pro"  # largest first
    assert [(row.subscription, row.days_overdue) for row in overview.past_due] == [(late, 5)]
    assert len(overview.recent_invoices) == 4


def test_billing_overview_page_for_staff(client, staff_user, overview_fixtures):
    client.force_login(staff_user)

    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("admin:billing_subscription_overview"))
        changelist = client.get(reverse("admin:billing_subscription_changelist"))

    body = page.content.decode()
    assert page.status_code == 200
    assert '<td data-figure="mrr">$496.00</td>' in body
    assert '<td data-figure="revenue">$397.00</td>' in body
    assert reverse("admin:billing_subscription_overview") in changelist.content.decode()
