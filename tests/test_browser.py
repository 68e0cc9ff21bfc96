"""The merchant's journey in a real browser (Playwright driving Debian's Chromium, headless): sign up for a
plan, pay (a signed webhook for the paid order), watch the checklist advance to an active store, reveal the
credentials, open the store's front page, add a domain of their own (the store page shows the DNS record to
create; the test sets it in pebble-challtestsrv), make it primary and see the store on HTTPS under it,
restore the database after reading what the restore would take away, make a staging copy, push a change made
on it to live (database only) and undo the push, and open a ticket with an attachment.
A second customer is then refused the first one's store, ticket and attachment. Every platform page is
checked for console errors and CSP violations, and screenshots land in var/test/screenshots/. Every public
page (the Wagtail marketing site and the public forms) gets the same check and a screenshot of its own.
"""

import base64
import functools
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from django.conf import settings
from django.db import connection

from billing.models import Subscription
from stores.models import Store
from tests.billing_helpers import complete_checkout
from tests.stripe_fake import StripeFake, webhook_endpoint_create

pytestmark = [pytest.mark.docker]
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "var" / "test" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # No name but the platform's own resolves: nothing the pages link to can reach the network.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
# Reports CSP violations as console errors (Chromium reports them there, but not always as `pageerror`).
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
});
"""
STORE_DOMAIN = "journey.test"
OWN_DOMAIN = "journeyshop.test"  # added on the store page, proven and made primary
CHALLTESTSRV_SET_TXT = "http://127.0.0.1:8055/set-txt"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: bin/test installs Debian's chromium package")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def platform(django_db_setup, django_db_blocker, stripe_api):
    """The platform served by a real HTTP server thread in this process (so the Stripe fake covers its calls),
    on the test database with real commits. Everything the journey creates is removed afterwards, and the
    plan's Stripe links are reset, so the tests after this one see the database as it was."""
    from axes.models import AccessAttempt, AccessLog
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread
    from djstripe import models as djstripe_models

    from accounts.models import AuditEvent, User
    from billing.models import Plan
    from billing.services.plans import plan_catalogue_seed, plan_price_create
    from cms.services import site_seed
    from consultations.models import Ticket

    with django_db_blocker.unblock():
        # Rows past these marks were made by the journey, and go when it is done.
        marked = (User, AuditEvent, AccessLog, AccessAttempt)
        marks = {model: (model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) for model in marked}
        plan_catalogue_seed()
        site_seed()
        # Commerce Pro: the journey makes a staging copy, which the plan's `staging` feature allows.
        plan = plan_price_create(plan_id=Plan.objects.get(slug="woocommerce-commerce-pro").pk)
        server = LiveServerThread("localhost", StaticFilesHandler, connections_override={}, port=0)
        server.daemon = True
        server.start()
        server.is_ready.wait()
        if server.error:
            raise server.error
        try:
            yield {"url": f"http://localhost:{server.port}", "plan": plan}
        finally:
            server.terminate()
            new_users = User.objects.filter(pk__gt=marks[User])
            Ticket.objects.filter(customer__in=new_users).delete()
            # Staging copies first: a live store cannot go while its copy points at it.
            stores = Store.objects.filter(customer__in=new_users)
            for store in sorted(stores, key=lambda store: store.staging_of_id is None):
                store.backup_runs.all().delete()
                store.delete()
            Subscription.objects.filter(customer__in=new_users).delete()
            new_users.delete()
            for model in (AuditEvent, AccessLog, AccessAttempt):
                model.objects.filter(pk__gt=marks[model]).delete()
            Plan.objects.filter(pk=plan.pk).update(stripe_product=None, stripe_price=None, stripe_synced={})
            djstripe_models.WebhookEndpoint.objects.filter(id="we_browser").delete()
            for model in (
                djstripe_models.WebhookEventTrigger,
                djstripe_models.Event,
                djstripe_models.Session,
                djstripe_models.SubscriptionItem,
                djstripe_models.Subscription,
                djstripe_models.Customer,
                djstripe_models.Price,
                djstripe_models.Product,
            ):
                model.objects.all().delete()
            connection.close()


class Tab:
    """A browser tab that records console errors on the platform's own pages and saves screenshots."""

    def __init__(self, browser, base_url: str):
        self.context = browser.new_context(base_url=base_url)
        self.context.add_init_script(CSP_LISTENER)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.base_url = base_url
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"{self.page.url}: {error}"))

    def _console(self, message):
        if message.type == "error" and self.page.url.startswith(self.base_url):
            self.errors.append(f"{self.page.url}: {message.text}")

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


class CheckoutRedirect:
    """Stands in for Stripe Checkout: the signup's redirect to checkout.stripe.com is recorded and answered
    with a local page (Playwright routes do not see the hops of a redirect, so the hop never happens)."""

    def __init__(self):
        self.location = ""

    def __call__(self, route):
        if route.request.method != "POST":
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        self.location = response.headers.get("location", "")
        if response.status != 302:
            route.fulfill(response=response)
            return
        route.fulfill(
            status=200, content_type="text/html", body=f"<title>Stripe Checkout</title><p>{self.location}</p>"
        )


def store_front_page_through_nginx(host: str):
    """The browser asks for http://<host>/… (the store's platform name); this answers from the test nginx on
    127.0.0.1:18080 with that Host, as DNS pointed at our proxy would. Once the store has its certificate nginx
    redirects to https://<host>:18443/…, which is followed here, over TLS with that name and pebble's root
    trusted: the browser stays on the URL it asked for. Nothing leaves the machine."""

    def answer(route):
        path = route.request.url.split(host, 1)[1] or "/"
        status, headers, body = _store_request(path, tls=False, host=host)
        location = headers.get("Location", headers.get("location", ""))
        if status == 301 and location.startswith(f"https://{host}:18443/"):
            status, headers, body = _store_request(location.split(":18443", 1)[1], tls=True, host=host)
        route.fulfill(status=status, headers=headers, body=body)

    return answer


@functools.cache
def _pebble_root() -> str:
    return requests.get("https://127.0.0.1:15000/roots/0", verify=settings.ACME_CA_BUNDLE, timeout=5).text


def _store_request(
    path: str, *, tls: bool, host: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None
) -> tuple[int, dict, bytes]:
    import ssl

    if tls:
        connection_ = http.client.HTTPConnection("127.0.0.1", 18443, timeout=10)
        root = _pebble_root()
        # SNI must carry the store's name: the TLS socket is made by hand.
        connection_.sock = ssl.create_default_context(cadata=root).wrap_socket(
            socket.create_connection(("127.0.0.1", 18443), timeout=10), server_hostname=host
        )
    else:
        connection_ = http.client.HTTPConnection("127.0.0.1", 18080, timeout=10)
    try:
        connection_.request(method, path, body=body, headers={**(headers or {}), "Host": host, "Connection": "close"})
        response = connection_.getresponse()
        body = response.read()
        skipped = ("transfer-encoding", "connection", "strict-transport-security", "set-cookie")
        answer = {k: v for k, v in response.getheaders() if k.lower() not in skipped}
        cookies = response.msg.get_all("Set-Cookie") or []
        if cookies:  # Playwright's fulfil takes one header per name: several cookies go one a line
            answer["Set-Cookie"] = "\n".join(cookies)
        return response.status, answer, body
    finally:
        connection_.close()


def store_over_https_through_nginx(host: str):
    """The browser asks for https://<host>/…: answered from the test nginx's HTTPS port with that name's SNI,
    trusting pebble's root only, so a certificate without the name fails the request."""

    def answer(route):
        path = route.request.url.split(host, 1)[1] or "/"
        status, headers, body = _store_request(path, tls=True, host=host)
        route.fulfill(status=status, headers=headers, body=body)

    return answer


def staging_copy_through_nginx(host: str, *, user: str, password: str):
    """The browser asks for https://<host>/… (a staging copy's name): answered from the test nginx's HTTPS
    port as store_over_https_through_nginx does, with the request's method, body and cookies (a WordPress
    sign-in), and the basic-auth user and password the merchant gives at the copy's password prompt. Playwright
    does not route the hops of a redirect, so WordPress's redirects on the copy's own name are followed here
    (as the browser would: a GET, the cookies set on the way kept and handed to the browser); the browser stays
    on the URL it asked for."""
    authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    passed = ("content-type", "accept", "user-agent", "referer")

    def answer(route):
        request = route.request
        sent = request.all_headers()
        headers = {name: value for name, value in sent.items() if name in passed}
        jar = dict(pair.split("=", 1) for pair in sent.get("cookie", "").split("; ") if "=" in pair)
        method, url, body, set_cookies = request.method, request.url, request.post_data_buffer, []
        for _hop in range(5):
            cookies = {"Cookie": "; ".join(f"{name}={value}" for name, value in jar.items())} if jar else {}
            status, answer_headers, content = _store_request(
                url.split(host, 1)[1] or "/",
                tls=True,
                host=host,
                method=method,
                headers={**headers, **cookies, "Authorization": authorization},
                body=body,
            )
            for cookie in answer_headers.pop("Set-Cookie", "").splitlines():
                set_cookies.append(cookie)
                name, _, rest = cookie.partition("=")
                value = rest.split(";", 1)[0]
                if value.strip() in ("", "deleted"):  # WordPress clears a cookie with a blank value
                    jar.pop(name, None)
                else:
                    jar[name] = value
            # WordPress may answer with a relative Location (wp-login.php?checkemail=confirm).
            location = urljoin(url, answer_headers.get("Location", answer_headers.get("location", "")))
            if status not in (301, 302, 303) or urlsplit(location).netloc != host:
                break
            method, url, body = "GET", location, None
            headers.pop("content-type", None)
        if set_cookies:
            answer_headers["Set-Cookie"] = "\n".join(set_cookies)
        route.fulfill(status=status, headers=answer_headers, body=content)

    return answer


def rq_burst_process(queue: str) -> subprocess.Popen:
    """A real `rqworker --burst` on `queue` in its own process, on the test database."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shophosting.settings.test",
        "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{connection.settings_dict['NAME']}",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", queue, "--burst"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def provisioning_worker_process() -> subprocess.Popen:
    """A real `rqworker --burst` in its own process, on the test database, so this thread can watch the page."""
    return rq_burst_process("provisioning")


JOB_PAGE_SETTLED = """() => {
  const steps = [...document.querySelectorAll('.checklist li')].map((item) => item.className);
  return steps.some((c) => c.includes('step-failed'))
    || (steps.length > 0 && steps.every((c) => /step-(succeeded|skipped)/.test(c)));
}"""


def job_page_finished(page, worker: subprocess.Popen) -> list[str]:
    """A job's own page, watched while a burst worker runs the job: once the worker is done, the page's poll
    shows every step succeeded or skipped (or one failed). Returns the steps' classes."""
    assert worker.wait(timeout=300) == 0, worker.stderr.read().decode()[-3000:]
    page.wait_for_function(JOB_PAGE_SETTLED, timeout=15_000)
    steps = page.eval_on_selector_all(".checklist li", "items => items.map(i => i.className)")
    assert all(step in ("step step-succeeded", "step step-skipped") for step in steps), (
        steps,
        page.text_content('[data-field="log"]')[-3000:],
    )
    return steps


def test_merchant_journey_from_signup_to_a_live_store_and_a_ticket(
    browser, platform, stripe_api, store_images, clean_test_stores, acme_server, restic_repository
):
    from accounts.services import customer_create

    base_url, priced_plan = platform["url"], platform["plan"]
    secret = "whsec_browser_journey"
    endpoint = webhook_endpoint_create(endpoint_id="we_browser", secret=secret, url=f"{base_url}/stripe/webhook/")
    tab = Tab(browser, base_url)
    page = tab.page
    checkout = CheckoutRedirect()
    page.route("**/signup/*/", checkout)

    # Pick the plan on the home page and sign up.
    page.goto("/")
    tab.shot("01-home")
    page.click(f"a[href='/signup/{priced_plan.slug}/']")
    page.fill("input[name=email]", "journey@example.com")
    page.fill("input[name=password]", "a long and unusual passphrase 42")
    page.fill("input[name=company]", "Journey Goods")
    page.fill("input[name=domain]", STORE_DOMAIN)
    tab.shot("02-signup")
    with page.expect_navigation():
        page.click("main button[type=submit]")
    assert checkout.location.startswith("https://checkout.stripe.com/c/pay/cs_test_"), page.content()[-3000:]

    # Stripe takes the payment and calls the webhook, signed; then sends the customer back.
    subscription = Subscription.objects.get(customer__email="journey@example.com")
    session, _ = complete_checkout(stripe_api, subscription.checkout_session_id, price_id=priced_plan.stripe_price_id)
    event = stripe_api.event("checkout.session.completed", session)
    payload = json.dumps(event)
    signature = StripeFake.signed_headers(payload, secret)["HTTP_STRIPE_SIGNATURE"]
    webhook = requests.post(
        f"{base_url}/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        timeout=30,
    )
    assert webhook.status_code == 200, webhook.text
    # The domain typed at signup reserved nothing: it waits for its DNS proof; the store has its platform name.
    store = Store.objects.get(names__name=STORE_DOMAIN)
    assert store.status == Store.Status.QUEUED and store.names.get(name=STORE_DOMAIN).status == "pending"
    page.route(f"http://{store.domain}/**", store_front_page_through_nginx(store.domain))

    page.goto(f"/billing/checkout/success/?session_id={session['id']}")
    assert "your payment was received" in page.content()
    tab.shot("03-payment-received")

    # The checklist advances on its own while a real worker builds the store.
    worker = provisioning_worker_process()
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = page.eval_on_selector_all(".checklist li", "items => items.map(i => i.className).join(' ')")
        if not seen or seen[-1] != states:
            seen.append(states)
        if page.text_content('[data-field="status"]') == "Active":
            # The poll that brought "Active" may have landed between reading the checklist and the status:
            # read the checklist once more, as that same poll left it.
            seen.append(page.eval_on_selector_all(".checklist li", "items => items.map(i => i.className).join(' ')"))
            break
        time.sleep(0.3)
    worker.wait(timeout=60)
    assert page.text_content('[data-field="status"]') == "Active", worker.stderr.read().decode()[-3000:]
    assert len(seen) >= 3, seen  # queued, steps running one by one, all done
    assert "step-running" in " ".join(seen) and seen[-1].count("step-succeeded") == seen[-1].count("step ")
    tab.shot("04-store-active")

    # The store page: reveal the credentials (audited), then visit the store itself.
    page.goto(f"/stores/{store.pk}/")
    # The store page shows the exact record that proves the signup's domain.
    proof = store.names.get(name=STORE_DOMAIN)
    assert f"_shophosting-challenge.{STORE_DOMAIN}" in page.content() and proof.proof_token in page.content()
    page.click("text=Reveal credentials")
    assert "admin_password" in page.content() or "Admin password" in page.content()
    tab.shot("05-credentials")
    page.goto(f"http://{store.domain}/")
    assert "Journey Goods" in page.title() or store.domain in page.content()
    tab.shot("06-store-front-page")

    # A domain of the merchant's own: added on the store page, which shows the exact record to create; the
    # merchant creates it at their DNS (here pebble-challtestsrv, the DNS the platform and the CA ask), checks
    # it, makes the domain primary, and the store answers on HTTPS under that name with its URLs moved there.
    first_backup = rq_burst_process("backups")  # queued when the store went live; until it ran, the store is busy
    assert first_backup.wait(timeout=120) == 0, first_backup.stderr.read().decode()[-3000:]
    page.goto(f"/stores/{store.pk}/")
    page.fill("#domain-add input[name=domain]", OWN_DOMAIN)
    with page.expect_navigation():
        page.click("#domain-add button[type=submit]")
    record = f"_shophosting-challenge.{OWN_DOMAIN}"
    proof = page.locator(f".domain-proof[data-record='{record}']")
    token = proof.locator("tr >> nth=1 >> td >> nth=2").text_content().strip()
    assert token == store.names.get(name=OWN_DOMAIN).proof_token
    assert proof.locator(f"li[data-name='www.{OWN_DOMAIN}']").count() == 1  # its www. alias, proven alike
    tab.shot("07-domain-record-to-create")
    requests.post(CHALLTESTSRV_SET_TXT, json={"host": f"{record}.", "value": token}, timeout=5).raise_for_status()
    with page.expect_navigation():
        page.click("text=Check now")
    names_job = rq_burst_process("provisioning")  # the names job: the certificate now covers the domain
    assert names_job.wait(timeout=180) == 0, names_job.stderr.read().decode()[-3000:]
    page.goto(f"/stores/{store.pk}/")
    own = page.locator(f"#addresses li[data-name='{OWN_DOMAIN}']")
    assert own.get_attribute("data-status") == "active" and "HTTPS on" in own.text_content(), [
        (job.kind, job.status, job.error) for job in store.jobs.order_by("pk")
    ] + [Store.objects.values_list("tls_status", "tls_error").get(pk=store.pk)]
    with page.expect_navigation():
        own.locator("text=Make primary").click()
    primary_job = rq_burst_process("provisioning")  # the application's own URLs move to the new name
    assert primary_job.wait(timeout=180) == 0, primary_job.stderr.read().decode()[-3000:]
    page.route(f"https://{OWN_DOMAIN}/**", store_over_https_through_nginx(OWN_DOMAIN))
    response = page.goto(f"https://{OWN_DOMAIN}/")
    assert response.status == 200 and page.url == f"https://{OWN_DOMAIN}/"
    assert "Journey Goods" in page.title() and f"https://{OWN_DOMAIN}/" in page.content()
    tab.shot("08-store-on-its-own-domain-over-https")

    # A database restore of the first backup, after a post, a comment and a user were written since: the page
    # names them before the merchant confirms, and keeps them for download.
    from backups.models import BackupRun, RestoreRun
    from tests.test_restore_exports import add_rows_after_the_backup

    snapshot = BackupRun.objects.filter(store=store, status="succeeded").earliest("pk").snapshot_id
    add_rows_after_the_backup(store)
    page.goto(f"/stores/{store.pk}/backups/{snapshot}/restore/?scope=database")
    with page.expect_navigation():
        page.click("text=Show what changed since this backup")
    changes = rq_burst_process("backups")
    assert changes.wait(timeout=120) == 0, changes.stderr.read().decode()[-3000:]
    page.goto(f"/stores/{store.pk}/backups/{snapshot}/restore/?scope=database")
    summary = page.text_content("#changes .summary")
    assert "1 post" in summary and "1 comment" in summary and "1 new user" in summary, summary
    assert page.locator("#changes a", has_text="Download what changed").count() == 1
    tab.shot("09-restore-summary-before-confirming")
    page.fill("input[name=confirm]", snapshot[:8])
    with page.expect_navigation():
        page.click("form button:has-text('Restore')")
    restore = rq_burst_process("backups")
    assert restore.wait(timeout=180) == 0, restore.stderr.read().decode()[-3000:]
    page.reload()
    steps = page.eval_on_selector_all(".checklist li", "items => items.map(i => i.className)")
    assert steps and all(step in ("step step-succeeded", "step step-skipped") for step in steps), steps
    restored = RestoreRun.objects.filter(store=store).latest("pk")
    assert restored.status == "succeeded", restored.error
    tab.shot("10-restored")

    # Staging (issue #19): the merchant makes a copy and watches it go live, a change made on it is pushed to
    # live (database only) behind a backup, the live store shows it, and undoing the push takes it away.
    from backups.staging.models import StagingRun
    from tests.test_backups import posts, sql

    page.goto(f"/stores/{store.pk}/")
    with page.expect_navigation():
        page.click("a[href$='/staging/']")
    with page.expect_navigation():
        page.click("form[action$='/staging/create/'] button[type=submit]")
    copy = store.staging_copies.get()
    created = StagingRun.objects.get(staging=copy, kind=StagingRun.Kind.CREATE)
    assert page.url.endswith(f"/stores/{copy.pk}/jobs/{created.job_id}/"), page.url
    assert page.text_content('[data-field="status"]') == "Queued"  # nothing runs it yet
    job_page_finished(page, provisioning_worker_process())
    assert page.text_content('[data-field="status"]') == "Active"
    tab.shot("10a-staging-copy-live")
    # The copy's mail is kept: the merchant asks for a password reset on the copy's sign-in page, then follows
    # the staging page's link to the copy's wp-admin (its password prompt, then WordPress's sign-in with the
    # live store's login, which the copy has) and reads the reset mail there.
    from stores.services import store_credentials

    staging_login, admin = store_credentials(copy), store_credentials(Store.objects.get(pk=store.pk))
    user, password = staging_login["staging_user"], staging_login["staging_password"]
    page.route(f"https://{copy.domain}/**", staging_copy_through_nginx(copy.domain, user=user, password=password))
    page.goto(f"https://{copy.domain}/wp-login.php?action=lostpassword")
    page.fill("#user_login", admin["admin_user"])
    with page.expect_navigation():
        page.click("#wp-submit")
    assert "Check your email" in page.text_content("#login"), page.content()[-2000:]
    page.goto(f"/stores/{store.pk}/staging/")
    assert copy.domain in page.text_content("main") and "kept" in page.text_content("#staging-captured-mail")
    with page.expect_navigation():
        page.click("#staging-captured-mail a")
    assert page.locator("#loginform").count() == 1  # WordPress's sign-in first: not signed in to the copy yet
    page.fill("#user_login", admin["admin_user"])
    page.fill("#user_pass", admin["admin_password"])
    with page.expect_navigation():
        page.click("#wp-submit")
    subjects = page.locator("#shophosting-captured-mail td.subject").all_text_contents()
    assert subjects == ["[Journey Goods] Password Reset"], subjects
    page.click("#shophosting-captured-mail summary")  # the message itself: the reset link, on the copy's name
    assert f"https://{copy.domain}/wp-login.php?action=rp" in page.text_content("#shophosting-captured-mail pre")
    tab.shot("10b-staging-captured-mail")

    # The change on staging, made in its database (what editing the post in the copy's wp-admin writes).
    assert "Hello world!" in posts(copy)
    sql(copy, "UPDATE wp_posts SET post_title = 'Changed on staging' WHERE post_title = 'Hello world!'")
    page.goto(f"/stores/{store.pk}/staging/")
    page.check("input[name=scope][value=database]")
    with page.expect_navigation():
        page.click("form[action$='/staging/push/'] button[type=submit]")
    push = StagingRun.objects.get(staging=copy, kind=StagingRun.Kind.PUSH)
    assert page.url.endswith(f"/stores/{store.pk}/jobs/{push.job_id}/"), page.url
    steps = job_page_finished(page, provisioning_worker_process())
    assert "step step-skipped" in steps  # the files, in a database-only push
    page.goto(f"/stores/{store.pk}/staging/")
    latest = page.locator(".table tbody tr").first
    assert "Push staging to live (database only)" in latest.text_content() and "Succeeded" in latest.text_content()
    tab.shot("10c-staging-pushed")
    page.goto(f"https://{OWN_DOMAIN}/")
    assert "Changed on staging" in page.content() and "Hello world!" not in page.content()
    tab.shot("10d-live-store-after-the-push")

    page.goto(f"/stores/{store.pk}/staging/")
    with page.expect_navigation():
        page.click("text=Undo this push")
    undo = StagingRun.objects.get(staging=copy, kind=StagingRun.Kind.UNDO)
    assert page.url.endswith(f"/stores/{store.pk}/jobs/{undo.job_id}/"), page.url
    job_page_finished(page, provisioning_worker_process())
    page.goto(f"https://{OWN_DOMAIN}/")
    assert "Hello world!" in page.content() and "Changed on staging" not in page.content()
    tab.shot("10e-live-store-after-the-undo")
    page.goto(f"/stores/{store.pk}/staging/")
    assert page.locator("text=Undo this push").count() == 0 and "Changed on staging" in posts(copy)

    # A ticket with an attachment.
    page.goto("/support/new/")
    page.select_option("select[name=category]", "store")
    page.fill("input[name=subject]", "Where do I upload my logo?")
    page.fill("textarea[name=body]", "The theme settings page looks different.")
    page.set_input_files(
        "input[name=attachments]", {"name": "logo-brief.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    page.click("main button[type=submit]")
    page.wait_for_url("**/support/TKT-*/")
    ticket_url = page.url
    attachment_href = page.get_attribute(".attachments a", "href")
    assert "logo-brief.pdf" in page.content()
    tab.shot("11-ticket")
    assert tab.errors == [], tab.errors

    # Another customer gets 404 for all of it.
    customer_create(email="second@example.com", password="second customer password 9")
    other = Tab(browser, base_url)
    other.page.goto("/accounts/login/")
    other.page.fill("input[name=username]", "second@example.com")
    other.page.fill("input[name=password]", "second customer password 9")
    other.page.click("main button[type=submit]")
    other.page.wait_for_url(f"{base_url}/accounts/")
    for url in (f"/stores/{store.pk}/", ticket_url, f"{base_url}{attachment_href}"):
        response = other.page.goto(url)
        assert response.status == 404, url
    other.shot("12-second-customer-refused")
    assert all("404" in error for error in other.errors), other.errors  # only the refusals themselves
    tab.context.close()
    other.context.close()


PUBLIC_PAGES = {
    "home": "/",
    "pricing": "/pricing/",
    "features": "/features/",
    "about": "/about/",
    "contact": "/contact/",
    "consultation": "/consultation/",
    "sign-in": "/accounts/login/",
    "password-reset": "/accounts/password/reset/",
    "signup": "/signup/woocommerce-commerce-core/",
}


def test_every_public_page_loads_in_chromium_without_console_errors_or_csp_violations(browser, platform):
    tab = Tab(browser, platform["url"])
    for name, path in PUBLIC_PAGES.items():
        response = tab.page.goto(path)
        assert response.status == 200, path
        assert tab.page.locator("header.site-header").is_visible(), path
        tab.shot(f"public-{name}")

    # The pricing page's platform switcher works (its script runs under the CSP nonce).
    tab.page.goto("/pricing/")
    assert tab.page.locator("#platform-magento").is_hidden()
    tab.page.click(".platform-switch [data-platform=magento]")
    assert tab.page.locator("#platform-magento").is_visible() and tab.page.locator("#platform-woocommerce").is_hidden()
    tab.shot("public-pricing-magento")
    # The menu toggle on a phone-sized screen.
    tab.page.set_viewport_size({"width": 390, "height": 800})
    tab.page.goto("/")
    tab.page.click(".nav-toggle")
    assert tab.page.locator("#site-nav a[href='/pricing/']").is_visible()
    tab.shot("public-home-phone")

    missing = tab.page.goto("/no-such-page/")
    assert missing.status == 404 and tab.page.locator("header.site-header").is_visible()
    tab.shot("public-404")
    assert [e for e in tab.errors if "404" not in e] == [], tab.errors  # the 404 itself is logged by Chromium
    tab.context.close()


STAFF_PAGES = {
    "dashboard": "/admin/",
    "customers": "/admin/accounts/customer/",
    "stores": "/admin/stores/store/",
    "new-store": "/admin/stores/store/add/",
    "jobs": "/admin/provisioning/provisioningjob/",
    "health": "/admin/operations/health/",
    "logs": "/admin/operations/logs/?log=web&level=WARNING",
    "audit": "/admin/accounts/auditevent/",
    "admin-users": "/admin/accounts/staffuser/",
    "cms-pages": "/cms-admin/pages/",
}


def test_the_staff_pages_render_in_chromium_without_console_errors(browser, platform):
    from accounts.roles import Role
    from accounts.services import staff_user_ensure

    staff_user_ensure(email="browser-staff@example.com", role=Role.SUPER_ADMIN, password="browser staff pass 7")
    tab = Tab(browser, platform["url"])
    tab.page.goto("/admin/login/")
    tab.page.fill("input[name=username]", "browser-staff@example.com")
    tab.page.fill("input[name=password]", "browser staff pass 7")
    tab.page.click("input[type=submit]")
    tab.page.wait_for_url(f"{platform['url']}/admin/")
    for name, path in STAFF_PAGES.items():
        response = tab.page.goto(path)
        assert response.status == 200, path
        tab.shot(f"staff-{name}")
    assert tab.page.locator("#staff-dashboard").count() == 0  # (the last page is Wagtail's, not the dashboard)
    tab.page.goto("/admin/")
    assert tab.page.locator("#dashboard-stores").is_visible() and tab.page.locator("#dashboard-actions").is_visible()

    # The buttons on a store's and a job's page are forms of their own (not nested in the change form).
    from accounts.services import customer_create
    from billing.models import Plan
    from provisioning.models import ProvisioningJob
    from stores.services import store_create

    customer = customer_create(email="browser-shop@example.com", password="browser shop pass 7")
    store = store_create(customer=customer, plan=Plan.objects.get(slug="woocommerce-commerce-core"), domain="b.test")
    Store.objects.filter(pk=store.pk).update(status=Store.Status.ACTIVE)
    # A failed resume of a store that is active again: the retry is refused (and nothing is queued).
    job = ProvisioningJob.objects.create(store=store, kind="resume", status="failed", error="boom")
    tab.page.goto(f"/admin/stores/store/{store.pk}/change/")
    tab.page.click("#store-operations input[value='Reveal credentials (audited)']")
    tab.page.wait_for_url(f"{platform['url']}/admin/stores/store/{store.pk}/credentials/")
    assert "recorded in the audit trail" in tab.page.content()
    tab.page.goto(f"/admin/provisioning/provisioningjob/{job.pk}/change/")
    tab.page.click("#job-retry input[type=submit]")
    tab.page.wait_for_load_state()
    assert f"Job #{job.pk} was not retried" in tab.page.content()
    tab.shot("staff-job-retried")
    assert tab.errors == [], tab.errors
    tab.context.close()


def test_the_staff_index_is_an_operations_console_for_each_role(browser, platform):
    """Each role signs in and gets a screenshot of the index (var/test/screenshots/console-<role>.png). Staff
    who operate see incidents, jobs and capacity above the records; nobody gets an "Add" button on the Stripe
    mirror; editors see their Wagtail uploads and no operations panels."""
    from django.conf import settings
    from django.test import Client

    from accounts.roles import Role
    from accounts.services import staff_user_ensure

    operating = {Role.SUPER_ADMIN: True, Role.ADMIN: True, Role.SUPPORT: True, Role.EDITOR: False}
    for role, operates in operating.items():
        email = f"console-{role.value}@example.com"
        user, _ = staff_user_ensure(email=email, role=role, password="console pass 7 words")
        # Signed in by session cookie: the sign-in form is covered above, and its rate limit (3/min) would
        # refuse the fourth role.
        session = Client()
        session.force_login(user)
        tab = Tab(browser, platform["url"])
        cookie = session.cookies[settings.SESSION_COOKIE_NAME].value
        tab.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": platform["url"]}])
        assert tab.page.goto("/admin/").status == 200, role
        tab.shot(f"console-{role.value}")
        page = tab.page
        assert page.locator("a.addlink[href^='/admin/djstripe/']").count() == 0, role
        assert page.locator("#dashboard-incidents").count() == int(operates), role
        assert page.locator("#dashboard-jobs").count() == int(operates), role
        if operates:
            records_top = page.locator("#content-main").bounding_box()["y"]
            for panel in ("#dashboard-incidents", "#dashboard-jobs"):
                assert page.locator(panel).bounding_box()["y"] < records_top, (role, panel)
            mirror = page.locator(".app-djstripe caption, .app-djstripe caption a").first
            if role == Role.SUPER_ADMIN:
                assert "Stripe mirror (read-only" in mirror.text_content()
            else:
                assert page.locator(".app-djstripe").count() == 0, role  # the mirror is for super admins
        if role in (Role.SUPER_ADMIN, Role.ADMIN):
            assert (
                page.locator("#dashboard-capacity").bounding_box()["y"]
                < page.locator("#content-main").bounding_box()["y"]
            )
        if role == Role.EDITOR:
            assert page.locator(".app-wagtailimages").is_visible()
        assert tab.errors == [], tab.errors
        tab.context.close()


@pytest.mark.django_db
def test_the_signup_page_the_journey_starts_from_renders(client, woo_plan):
    """(Also makes pytest-django set up the test database when this module runs alone.)"""
    page = client.get(f"/signup/{woo_plan.slug}/").content.decode()
    assert 'name="domain"' in page and "Continue to payment" in page
