"""Every feature a plan sells works, or is taken off sale (issue #16, item 7).

The public pricing page (through its real URL, with the seeded catalogue), the signup pages and the seed
catalogue are read for the feature flags they sell. Each one must name where its behaviour lives and the
test that proves it (FEATURE_BEHAVIOUR), or be one of the few flags another issue is delivering right now
(IN_PROGRESS, with the reason). A flag in neither fails, and so does a proof test that does not exist."""

import importlib
import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils.text import capfirst

from billing.models import FIRST_RESPONSE_TARGETS, Plan
from billing.services.plans import SEED_CATALOGUE

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("woo_plan", "site_pages")]

# flag -> (where its behaviour lives, the test that proves it)
FEATURE_BEHAVIOUR = {
    "daily_backups": (
        "backups: backups_enqueue_due queues a backup of every live store every BACKUP_INTERVAL_HOURS",
        "tests/test_backup_pages.py::test_due_backups_are_queued_by_interval_and_commands_refuse_bad_input",
    ),
    "email_support": (
        "consultations: the ticket's first answer is due within FIRST_RESPONSE_TARGETS['email_support']",
        "tests/test_ticket_response_targets.py::test_a_ticket_is_due_within_its_customers_best_target",
    ),
    "support_24_7": (
        "consultations: first answer due within FIRST_RESPONSE_TARGETS['support_24_7'], around the clock",
        "tests/test_ticket_response_targets.py::test_a_ticket_is_due_within_its_customers_best_target",
    ),
    "dedicated_support": (
        "consultations: first answer due within FIRST_RESPONSE_TARGETS['dedicated_support']",
        "tests/test_ticket_response_targets.py::test_a_ticket_is_due_within_its_customers_best_target",
    ),
    "advanced_security": (
        "provisioning: the store's vhost runs ModSecurity with the OWASP Core Rule Set; blocks logged and counted",
        "tests/test_firewall.py::test_the_firewall_blocks_sql_injection_on_the_protected_store_only_logs_it_and_the_store_page_counts_it",
    ),
    "sla_uptime": (
        "provisioning.care: monthly uptime from check rounds against Plan.sla_target_percent; breaches listed",
        "tests/test_store_care.py::test_monthly_uptime_counts_maintenance_apart_and_sla_plans_show_their_target_and_breaches",
    ),
    "staging": (
        "staging: a copy beside the live store (basic auth, noindex, mail captured), pushed back behind a backup",
        "tests/test_staging.py::test_staging_copy_from_a_backup_push_undo_basic_auth_noindex_mail_suspend_resume_and_teardown",
    ),
    "redis_cache": (
        "provisioning: WordPress keeps its object cache in the store's own Redis (the drop-in), bounded by it",
        "tests/test_object_cache.py::test_wordpress_object_cache_lives_in_the_stores_own_redis_and_the_store_answers_without_it",
    ),
}

# Still sold while other work delivers them. Keep this short: a flag moves to FEATURE_BEHAVIOUR the day it
# works. Issue #16 allows only these here; any other flag without behaviour is taken off sale.
IN_PROGRESS: dict[str, str] = {}
ALLOWED_IN_PROGRESS = {"redis_cache", "staging", "sla_uptime", "advanced_security"}
# Taken off sale: nothing delivered them (billing/README.md, "What a plan sells").
OFF_SALE = {"premium_plugins": "Premium plugins", "centralized_management": "Centralized management",
            "white_label": "White label"}  # fmt: skip


def page(path: str) -> str:
    response = Client().get(path)
    assert response.status_code == 200, path
    return response.content.decode()


def flags_on_the_pricing_page() -> set[str]:
    return set(re.findall(r'<tr data-feature="([a-z0-9_]+)">', page("/pricing/")))


def flags_on_the_signup_pages() -> set[str]:
    """The features each active plan's signup page lists, back from their names to their flags."""
    by_name = {capfirst(Plan._meta.get_field(flag).verbose_name): flag for flag in Plan.FEATURE_FLAGS}
    flags = set()
    for plan in Plan.objects.filter(active=True):
        html = page(reverse("billing:signup", args=[plan.slug]))
        listed = re.search(r'<ul class="features">(.*?)</ul>', html, re.S)
        for name in re.findall(r"<li>(.*?)</li>", listed.group(1) if listed else ""):
            flags.add(by_name.get(name, f"unknown feature {name!r} on {plan.slug}"))
    return flags


def flags_in_the_catalogue() -> set[str]:
    return set(Plan.FEATURE_FLAGS) | {flag for *_, flags in SEED_CATALOGUE for flag in flags}


def test_every_feature_sold_has_behaviour_behind_it_or_is_named_in_progress():
    shown = flags_on_the_pricing_page()
    assert {"daily_backups", "email_support", "support_24_7", "dedicated_support"} <= shown  # the page was read
    sold = shown | flags_on_the_signup_pages() | flags_in_the_catalogue()

    without_behaviour = sorted(flag for flag in sold if flag not in FEATURE_BEHAVIOUR and flag not in IN_PROGRESS)

    assert without_behaviour == [], f"sold without behaviour (deliver it or take it off sale): {without_behaviour}"


@pytest.mark.parametrize("flag", sorted(FEATURE_BEHAVIOUR))
def test_each_proof_test_exists(flag):
    path, _, name = FEATURE_BEHAVIOUR[flag][1].partition("::")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert name.startswith("test_") and callable(getattr(module, name, None)), FEATURE_BEHAVIOUR[flag][1]


def test_what_the_flags_promise_is_what_the_code_does():
    assert settings.BACKUP_INTERVAL_HOURS <= 24  # "daily backups": at least one a day
    support = {"email_support", "support_24_7", "dedicated_support"}
    assert set(FIRST_RESPONSE_TARGETS) == support
    # A better support flag answers sooner.
    assert (
        FIRST_RESPONSE_TARGETS["dedicated_support"]
        < FIRST_RESPONSE_TARGETS["support_24_7"]
        < FIRST_RESPONSE_TARGETS["email_support"]
    )


def test_the_in_progress_list_stays_the_four_the_issue_allows():
    assert set(IN_PROGRESS) <= ALLOWED_IN_PROGRESS
    assert not set(IN_PROGRESS) & set(FEATURE_BEHAVIOUR)  # delivered: move it out of IN_PROGRESS
    assert all(reason.strip() for reason in IN_PROGRESS.values())


def test_features_taken_off_sale_are_shown_nowhere():
    field_names = {field.name for field in Plan._meta.get_fields()}
    assert not set(OFF_SALE) & (set(Plan.FEATURE_FLAGS) | field_names | flags_in_the_catalogue())
    pages = [page("/pricing/")] + [
        page(reverse("billing:signup", args=[plan.slug])) for plan in Plan.objects.filter(active=True)
    ]
    for html in pages:
        for name in OFF_SALE.values():
            assert name.lower() not in html.lower()
    agency_plus = Plan.objects.get(slug="woocommerce-agency-plus")  # every flag on
    assert not {name.lower() for name in OFF_SALE.values()} & {str(f).lower() for f in agency_plus.features}
