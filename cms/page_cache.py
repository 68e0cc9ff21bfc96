"""A full-page cache for anonymous visitors of the marketing site (Redis, through Django's cache).

Every anonymous visitor of a published marketing page gets the same bytes, so rendering it (7 queries, the
plan catalogue, the menu) once per change instead of once per visit is what lets the site keep up with a
launch or an ad campaign. What is cached, and what never is:

- Only pages that opted in (`page_cache_allow`, called by `MarketingPage.serve`: Wagtail's published
  pages; never a preview, a password-protected page's form or any view of the apps) with status 200,
  answering a GET from a visitor with no cookie but the CSRF one: a signed-in visitor, or anyone with a
  session or pending messages, always gets a fresh render.
- Never a response that set a cookie, used a CSRF token (the contact forms: the token is the visitor's own)
  or said private/no-store, nor a visitor that turned out to be signed in.
- The CSP nonce (django-csp, on every script tag) is a secret of one response: a cached copy gets a new one,
  in the body and the header alike, on every hit.

Freshness: the cache's generation (one key) moves on when an editor publishes, unpublishes, moves or
deletes a page, when a schedule publishes one (Wagtail's `publish_scheduled` sends the same signals), and
when a plan changes (prices and limits are on the home and pricing pages); every entry carries the
generation it was rendered in, read with the page in one round trip, so an entry from before a change is
never served, even one whose render raced the change. PAGE_CACHE_SECONDS bounds any entry's life
(0 turns the cache off).
"""

import base64
import hashlib
import logging
import os
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.http import HttpResponse

logger = logging.getLogger(__name__)

GENERATION_KEY = "pagecache:generation"
PAGE_KEY_PREFIX = "pagecache:page:"
MARKER = "_marketing_page_cacheable"
HIT_HEADER = "X-Page-Cache"


def _cache():
    return caches[settings.PAGE_CACHE_ALIAS]


def page_cache_allow(request) -> None:
    """Called by a view whose anonymous GET responses are the same for every visitor. An editor's preview of
    a draft goes through the page's `serve` too, and is never one of them."""
    if not getattr(request, "is_preview", False):
        setattr(request, MARKER, True)


def page_cache_clear(**_signal_arguments) -> None:
    """Make every cached page stale: a new generation, so entries rendered before now are never served again
    (they expire by themselves). Connected to the signals in cms/apps.py; a Redis outage is logged, since
    the entries live in that same Redis and cannot outlive PAGE_CACHE_SECONDS."""
    try:
        _cache().set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:  # noqa: BLE001 - a publish must not fail because the cache is down
        logger.exception("the page cache could not be cleared")


def _lookup(key: str) -> tuple[str, object]:
    """The current generation and what is stored under `key`, in one round trip; raises when Redis is down."""
    found = _cache().get_many([GENERATION_KEY, key])
    return found.get(GENERATION_KEY, ""), found.get(key)


def _keep(key: str, value, what: str) -> None:
    try:
        _cache().set(key, value, timeout=settings.PAGE_CACHE_SECONDS)
    except Exception:  # noqa: BLE001 - the next request renders it again
        logger.warning("the page cache could not store %s", what, exc_info=True)


def fragment_cached(name: str, compute):
    """`compute()` once per cache generation for everyone: a part of a page that every visitor shares, on the
    pages that are not cached whole (the menu on a signed-in customer's dashboard). Same freshness rules as
    the pages; computed on the spot when the cache is off or down."""
    if settings.PAGE_CACHE_SECONDS <= 0:
        return compute()
    key = f"pagecache:fragment:{hashlib.sha256(name.encode()).hexdigest()}"
    try:
        generation, entry = _lookup(key)
    except Exception:  # noqa: BLE001 - Redis down: as with the cache off
        return compute()
    if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == generation:
        return entry[1]
    value = compute()
    _keep(key, (generation, value), f"the fragment {name}")
    return value


@dataclass(frozen=True)
class CachedPage:
    generation: str
    content: bytes
    headers: tuple[tuple[str, str], ...]
    nonce: str | None

    def response(self) -> HttpResponse:
        content, headers = self.content, dict(self.headers)
        if self.nonce:
            fresh = base64.b64encode(os.urandom(16)).decode("ascii")  # as django-csp makes them
            content = content.replace(self.nonce.encode(), fresh.encode())
            headers = {name: value.replace(self.nonce, fresh) for name, value in headers.items()}
        response = HttpResponse(content, status=200)
        for name, value in headers.items():
            response[name] = value
        response["Content-Length"] = str(len(content))
        response[HIT_HEADER] = "hit"
        return response


def _request_cacheable(request) -> bool:
    return (
        settings.PAGE_CACHE_SECONDS > 0
        and request.method in ("GET", "HEAD")
        and set(request.COOKIES) <= {settings.CSRF_COOKIE_NAME}
    )


def _response_cacheable(request, response) -> bool:
    user = getattr(request, "user", None)
    cache_control = response.get("Cache-Control", "")
    return (
        request.method == "GET"
        and getattr(request, MARKER, False)
        and response.status_code == 200
        and not response.streaming
        and not response.cookies
        and not request.META.get("CSRF_COOKIE_USED")
        and "private" not in cache_control
        and "no-store" not in cache_control
        and not (user is not None and user.is_authenticated)
    )


def _page_key(request) -> str:
    address = f"{request.scheme}://{request.get_host()}{request.get_full_path()}"
    return PAGE_KEY_PREFIX + hashlib.sha256(address.encode()).hexdigest()


class MarketingPageCacheMiddleware:
    """Placed before the session, CSRF and auth middleware, so a hit costs one Redis round trip and none of
    them; the headers they and the CSP, frame and Wagtail middleware add on the way out are stored with the
    page. The request id, security and static-file middleware sit outside it and add theirs to every
    response, hit or not."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not _request_cacheable(request):
            return self.get_response(request)
        key = _page_key(request)
        try:
            generation, entry = _lookup(key)
        except Exception:  # noqa: BLE001 - Redis down: the site renders as it would without the cache
            logger.warning("the page cache is unreachable; rendering %s", request.path, exc_info=True)
            return self.get_response(request)
        if isinstance(entry, CachedPage) and entry.generation == generation:
            return entry.response()
        response = self.get_response(request)
        if _response_cacheable(request, response):
            self._store(key, generation, request, response)
        return response

    def _store(self, key: str, generation: str, request, response) -> None:
        headers = tuple((name, value) for name, value in response.items() if name.lower() != "content-length")
        entry = CachedPage(
            generation=generation,
            content=response.content,
            headers=headers,
            nonce=nonce if isinstance(nonce := getattr(request, "_csp_nonce", None), str) else None,
        )
        _keep(key, entry, request.path)
        response[HIT_HEADER] = "miss"
