"""The checks a round runs against a store, in order, and provisioning's own.

A check is `run(store) -> Verdict`: read-only, quick, no lock, no job. It raises nothing for a failing store
(it returns FAILED with the reason in plain words); an exception is a bug or an unreachable engine, and the
round records it as a failure of that check. `availability` checks decide uptime (the store answers its
customers); the others warn (a certificate close to expiry, a full disk, a stale backup) and open incidents
the same way, but a round where only they fail counts as up.

Apps above provisioning register theirs from their AppConfig.ready() with `check_register` (backups: the
last backup and its verification); registering a name again replaces it.
"""

import html
import http.client
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from django.conf import settings
from django.utils import timezone

from provisioning import acme_client, docker_client
from provisioning.stacks import stack_for
from stores.models import Platform, Store, StoreName
from stores.selectors import store_disk_usage

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


@dataclass(frozen=True)
class Verdict:
    result: str  # OK, FAILED or SKIPPED
    message: str = ""


@dataclass(frozen=True)
class Check:
    name: str
    title: str  # what merchants and staff read: "Front page", "Certificate"
    run: Callable[[Store], Verdict]
    availability: bool = False


_checks: dict[str, Check] = {}


def check_register(*, name: str, title: str, run: Callable[[Store], Verdict], availability: bool = False) -> None:
    _checks[name] = Check(name=name, title=title, run=run, availability=availability)


def checks_registered() -> list[Check]:
    return list(_checks.values())


# --- Pages ------------------------------------------------------------------------------------------------


def _get(store: Store, path: str, *, timeout: float) -> tuple[int, str]:
    """GET `path` on the store's published port with its domain as Host, never following redirects."""
    connection = http.client.HTTPConnection(store.host.bind_address, store.port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": store.domain, "Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read(2_000_000).decode(errors="replace")
    finally:
        connection.close()


def _page(store: Store, path: str) -> tuple[int, str, float] | Verdict:
    """(status, body, seconds), or a FAILED verdict when the page does not answer within the budget."""
    budget = settings.CARE_PAGE_BUDGET_SECONDS
    started = time.monotonic()
    try:
        status, body = _get(store, path, timeout=budget)
    except (OSError, http.client.HTTPException) as exc:
        return Verdict(FAILED, f"{path} did not answer: {exc or type(exc).__name__}")
    return status, body, time.monotonic() - started


def front_page(store: Store) -> Verdict:
    page = _page(store, "/")
    if isinstance(page, Verdict):
        return page
    status, body, seconds = page
    if status != 200:
        return Verdict(FAILED, f"the front page answers HTTP {status}")
    found = TITLE.search(body)
    title = " ".join(html.unescape(found.group(1)).split()) if found else ""
    if store.site_title not in title:
        return Verdict(FAILED, f"the front page's title is “{title}”, not “{store.site_title}”")
    if seconds > settings.CARE_PAGE_BUDGET_SECONDS:
        return Verdict(FAILED, f"the front page took {seconds:.1f} s (budget {settings.CARE_PAGE_BUDGET_SECONDS} s)")
    return Verdict(OK, f"200 with “{store.site_title}” in {seconds:.2f} s")


def admin_login(store: Store) -> Verdict:
    stack = stack_for(store)
    page = _page(store, stack.admin_login_path)
    if isinstance(page, Verdict):
        return page
    status, body, _ = page
    if status != 200 or stack.admin_login_marker not in body:
        return Verdict(FAILED, f"the admin login page {stack.admin_login_path} answers HTTP {status} without its form")
    return Verdict(OK, f"{stack.admin_login_path} shows its login form")


# WooCommerce's Store API answers its cart here, with or without pretty permalinks; WordPress without the
# plugin answers 404 `rest_no_route` there, which is no outage: the check then does not apply.
CART_PATH = "/?rest_route=/wc/store/v1/cart"


def cart(store: Store) -> Verdict:
    if store.platform != Platform.WOOCOMMERCE:
        return Verdict(SKIPPED, "not a WooCommerce store")
    page = _page(store, CART_PATH)
    if isinstance(page, Verdict):
        return page
    status, body, _ = page
    if status == 404 and "rest_no_route" in body:
        return Verdict(SKIPPED, "the WooCommerce plugin is not active in this store")
    if status != 200:
        return Verdict(FAILED, f"the cart answers HTTP {status}")
    return Verdict(OK, "the cart answers")


# --- Certificate, containers, disk ------------------------------------------------------------------------


def store_names(store: Store) -> list[str]:
    """The names the store's certificate must cover: its active names (a name given up as unreachable is
    reported on the store page and left off the certificate), or its signup domain for a store that has
    no name rows yet (it gets them at its next vhost write)."""
    active = [name.name for name in store.names.all() if name.status == StoreName.Status.ACTIVE]
    return active or [store.domain]


def certificate(store: Store) -> Verdict:
    if store.tls_status != Store.TLS.ISSUED:
        return Verdict(SKIPPED, "no certificate asked for")
    path = acme_client.certificate_paths(store.proxy_key).fullchain_path
    if not path.exists():
        return Verdict(FAILED, "the certificate file is missing")
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        covered = set(
            cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        )
    except x509.ExtensionNotFound:
        covered = set()
    missing = [name for name in store_names(store) if name not in covered]
    if missing:
        return Verdict(FAILED, f"the certificate does not cover {', '.join(missing)}")
    left = cert.not_valid_after_utc - timezone.now()
    if left < timedelta(days=settings.CARE_CERTIFICATE_MIN_DAYS):
        return Verdict(FAILED, f"the certificate expires in {max(left.days, 0)} days")
    return Verdict(OK, f"valid for {left.days} more days")


def containers(store: Store) -> Verdict:
    stack = stack_for(store)
    problems = []
    for service in stack.services():
        name = stack.container_name(service.role)
        status, health = docker_client.container_state(name=name, base_url=store.host.engine)
        if status != "running":
            problems.append(f"{service.role} is {status}")
        elif health not in ("", "healthy", "starting"):
            problems.append(f"{service.role} is {health}")
    return Verdict(FAILED, "; ".join(problems)) if problems else Verdict(OK, "every container runs")


def disk(store: Store) -> Verdict:
    usage = store_disk_usage(store)
    if usage is None:
        return Verdict(SKIPPED, "not measured yet")
    if usage.state == "over":
        return Verdict(FAILED, f"{usage.used_gb} GB used of {store.plan.disk_allowance_gb} GB allowed")
    return Verdict(OK, f"{usage.percent}% of the allowance")


check_register(name="front_page", title="Front page", run=front_page, availability=True)
check_register(name="admin_login", title="Admin login page", run=admin_login, availability=True)
check_register(name="cart", title="Cart", run=cart, availability=True)
check_register(name="containers", title="Containers", run=containers, availability=True)
check_register(name="certificate", title="Certificate", run=certificate)
check_register(name="disk", title="Disk", run=disk)
