"""Fixtures every part of the suite uses. The servers and services the tests start or fake live in
tests/plugins/ (one module each), and so do the CI-strict skip rules and the store factories."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

# Test modules import these from here; they live in tests/plugins/ (rewritten for pytest's assert messages,
# which it can only do if it is told before this import).
pytest.register_assert_rewrite("tests.plugins")
from tests.plugins import ROOT  # noqa: E402, F401
from tests.plugins.ci import IN_CI, require_or_skip, require_tool  # noqa: E402, F401

pytest_plugins = [
    "tests.plugins.ci",
    "tests.plugins.docker",
    "tests.plugins.engines",
    "tests.plugins.nginx",
    "tests.plugins.acme",
    "tests.plugins.rq",
    "tests.plugins.restic",
    "tests.plugins.stripe",
    "tests.plugins.factories",
]


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
def page_cache_on(settings):
    """The marketing pages' cache on, as in production (off in the test settings: a test's rows are rolled
    back while Redis keeps the pages rendered from them), starting and ending empty."""
    from cms.page_cache import page_cache_clear

    settings.PAGE_CACHE_SECONDS = 300
    page_cache_clear()
    yield
    page_cache_clear()


@pytest.fixture
def staff_user(db):
    from accounts.roles import Role
    from accounts.services import staff_user_ensure

    user, _ = staff_user_ensure(email="staff@example.com", role=Role.SUPER_ADMIN, password="staff password 123")
    return user


@pytest.fixture
def woo_plan(db):
    from billing.models import Plan
    from billing.services.plans import plan_catalogue_seed

    plan_catalogue_seed()
    return Plan.objects.get(slug="woocommerce-commerce-core")


@pytest.fixture
def _data_migrations_put_back(request, django_db_blocker):
    """A transactional test ends with a flush that empties every table, rows written by data migrations (staff
    roles, the local host, Wagtail's root page) included, and bin/test keeps the database for later runs.
    serialized_rollback gives the test those rows; this puts them back after the flush (at module teardown,
    which runs after the test's own)."""

    def put_back() -> None:
        with django_db_blocker.unblock():
            connection.creation.deserialize_db_from_string(connection._test_serialized_contents)

    request.node.parent.addfinalizer(put_back)
