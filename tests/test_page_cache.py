"""The marketing pages' full-page cache (cms/page_cache.py) on the real Redis: anonymous visitors get one
rendering per change, with a nonce of their own; nobody else ever gets a cached copy, and nothing an editor or
staff change shows late. tests/test_cms.py runs the editors' whole workflow with the cache on as well."""

import re

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing.models import Plan
from cms.models import AboutPage, PricingPage
from cms.page_cache import HIT_HEADER, page_cache_clear

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("woo_plan", "site_pages", "page_cache_on")]


def nonce_of(response) -> str:
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert f'nonce="{nonce}"' in response.content.decode()  # the page's scripts carry the header's nonce
    return nonce


def test_an_anonymous_visitor_gets_the_cached_page_with_a_nonce_of_its_own_and_no_queries():
    first = Client().get("/about/")
    assert first.status_code == 200 and first[HIT_HEADER] == "miss"
    with CaptureQueriesContext(connection) as queries:
        second = Client().get("/about/")
    assert second.status_code == 200 and second[HIT_HEADER] == "hit"
    assert len(queries) == 0  # no session, no user, no page, no plans: one Redis round trip
    assert nonce_of(first) != nonce_of(second)
    assert second.content.decode().replace(nonce_of(second), "N") == first.content.decode().replace(
        nonce_of(first), "N"
    )
    # The headers the inner middleware set are kept; those of the outer ones are fresh on every response.
    assert second["X-Frame-Options"] == first["X-Frame-Options"] == "DENY"
    assert second["X-Request-ID"] != first["X-Request-ID"]
    assert int(second["Content-Length"]) == len(second.content)
    assert Client().head("/about/")[HIT_HEADER] == "hit"


def test_publishing_and_unpublishing_show_at_once():
    about = AboutPage.objects.get()
    assert "A new about title" not in Client().get("/about/").content.decode()
    about.title = "A new about title"
    about.save_revision().publish()
    page = Client().get("/about/")
    assert page[HIT_HEADER] == "miss" and "A new about title" in page.content.decode()
    # The menu on every other page names it too: they were cleared with it.
    Client().get("/pricing/")
    about.unpublish()
    assert Client().get("/about/").status_code == 404
    assert "A new about title" not in Client().get("/pricing/").content.decode()


def test_a_plan_change_shows_on_the_pricing_page_at_once():
    core = Plan.objects.get(slug="woocommerce-commerce-core")
    assert f'data-price="{core.slug}">${core.price_monthly:.2f}' in Client().get("/pricing/").content.decode()
    assert Client().get("/pricing/")[HIT_HEADER] == "hit"
    core.price_monthly = "77.00"
    core.save()  # as the plan admin saves it
    page = Client().get("/pricing/")
    assert page[HIT_HEADER] == "miss" and f'data-price="{core.slug}">$77.00' in page.content.decode()


def test_an_entry_rendered_before_a_change_is_never_served_after_it():
    """A render that raced a publish is stored under the generation it started in, and not served after."""
    from django.core.cache import caches

    from cms.page_cache import GENERATION_KEY, PAGE_KEY_PREFIX

    Client().get("/pricing/")
    cache = caches[settings.PAGE_CACHE_ALIAS]
    keys = [key for key in cache.keys(f"{PAGE_KEY_PREFIX}*")]
    assert keys
    before = cache.get(GENERATION_KEY)
    page_cache_clear()
    assert cache.get(GENERATION_KEY) != before
    assert all(cache.get(key).generation == before for key in keys)  # still there, but stale
    assert Client().get("/pricing/")[HIT_HEADER] == "miss"


def test_signed_in_visitors_and_sessions_never_get_or_make_a_cached_copy(user_factory):
    Client().get("/pricing/")  # cached for anonymous visitors
    customer = Client()
    customer.force_login(user_factory(email="shopper@example.com"))
    page = customer.get("/pricing/")
    assert HIT_HEADER not in page
    anonymous = Client().get("/pricing/")
    assert anonymous[HIT_HEADER] == "hit" and "shopper@example.com" not in anonymous.content.decode()

    with_session = Client()
    with_session.cookies[settings.SESSION_COOKIE_NAME] = "a-session-of-someone"
    assert HIT_HEADER not in with_session.get("/pricing/")


def test_pages_with_a_csrf_token_are_never_cached():
    first = Client().get("/contact/")
    second = Client().get("/contact/")
    assert HIT_HEADER not in first and HIT_HEADER not in second
    token = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
    assert token.search(first.content.decode()).group(1) != token.search(second.content.decode()).group(1)


def test_the_apps_pages_are_never_cached():
    for path in ("/accounts/login/", "/healthz", "/status/", "/robots.txt", "/sitemap.xml"):
        assert HIT_HEADER not in Client().get(path), path


def test_a_cache_that_does_not_answer_serves_fresh_pages(settings):
    settings.CACHES = {
        **settings.CACHES,
        "page_cache_down": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"},
    }
    settings.PAGE_CACHE_ALIAS = "page_cache_down"
    page = Client().get("/pricing/")
    assert page.status_code == 200 and HIT_HEADER not in page
    assert PricingPage.objects.get().title in page.content.decode()


def test_off_when_its_lifetime_is_zero(settings):
    settings.PAGE_CACHE_SECONDS = 0
    Client().get("/about/")
    assert HIT_HEADER not in Client().get("/about/")
