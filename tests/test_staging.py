"""Staging copies on the real engine (issue #19, item 1): a live store and its staging copy, built once for the
module's Docker test, through nginx (basic auth, noindex) with a real restic repository behind the pre-push
backup; and the refusals, which need no engine."""

import base64
import http.client
import re
import socket
import ssl
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from backups.models import BackupRun, RunStatus
from backups.staging.models import StagingRun
from backups.staging.services import staging_create, staging_push, staging_refresh, staging_undo
from billing.models import Plan
from provisioning import docker_client, proxy
from provisioning.exceptions import ProvisioningError
from provisioning.models import JobStep, ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.services import job_enqueue, job_execute, job_retry, stores_disk_measure
from stores.exceptions import NoCapacity
from stores.models import Store, StoreName
from stores.selectors import store_history, store_list_for_customer
from stores.services import store_create, store_credentials
from tests.test_backups import WP_CONTENT, back_up, insert_post, posts, sql, web
from tests.test_provisioning import HTTPS_PORT, NGINX_PORT, pebble_root

pytestmark = pytest.mark.django_db
CAPTURE_MAIL = (
    "$_SERVER['HTTP_HOST'] = parse_url(getenv('WORDPRESS_URL'), PHP_URL_HOST); $_SERVER['REQUEST_URI'] = '/';"
    " require '/var/www/html/wp-load.php';"
    " echo wp_mail('buyer@example.com', 'Your order on staging', 'Thank you') ? 'handled' : 'failed';"
)
# A subscriber of the copy (WordPress's own wp_insert_user; the password from the exec's environment).
ADD_SUBSCRIBER = (
    "$_SERVER['HTTP_HOST'] = parse_url(getenv('WORDPRESS_URL'), PHP_URL_HOST); $_SERVER['REQUEST_URI'] = '/';"
    " require '/var/www/html/wp-load.php';"
    " $id = wp_insert_user(['user_login' => 'shopper', 'user_email' => 'shopper@example.com',"
    " 'user_pass' => getenv('SUBSCRIBER_PASSWORD'), 'role' => 'subscriber']);"
    " echo is_wp_error($id) ? $id->get_error_message() : 'created';"
)


def through_nginx(name: str, *, auth: tuple[str, str] | None = None):
    """GET / for `name` through the test nginx, following its redirect to HTTPS (pebble's certificate, SNI
    `name`) when the name has one; never resolves the name."""
    headers = f"Host: {name}\r\nConnection: close\r\n"
    if auth:
        headers += f"Authorization: Basic {base64.b64encode(':'.join(auth).encode()).decode()}\r\n"
    connection = http.client.HTTPConnection("127.0.0.1", NGINX_PORT, timeout=10)
    connection.request("GET", "/", headers=dict(line.split(": ", 1) for line in headers.strip().split("\r\n")))
    response = connection.getresponse()
    response.text = response.read().decode(errors="replace")
    connection.close()
    if response.status != 301:
        return response
    context = ssl.create_default_context(cadata=pebble_root())
    raw = socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10)
    with context.wrap_socket(raw, server_hostname=name) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\n{headers}\r\n".encode())
        response = http.client.HTTPResponse(tls)
        response.begin()
        response.text = response.read().decode(errors="replace")
    return response


class NginxSession:
    """Requests to one name through the test nginx, as a browser with that name resolved to us would make them:
    HTTPS (pebble's certificate, SNI the name) once the name has a certificate, HTTP before; the basic-auth
    password on every request; the cookies WordPress sets kept and sent back (a wp-admin sign-in). Redirects
    are returned, not followed."""

    def __init__(self, name: str, *, auth: tuple[str, str]):
        self.name = name
        self.authorization = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        self.cookies: dict[str, str] = {}
        probe = http.client.HTTPConnection("127.0.0.1", NGINX_PORT, timeout=10)
        probe.request("GET", "/", headers={"Host": name, "Connection": "close"})
        self.tls = probe.getresponse().status == 301
        probe.close()

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", HTTPS_PORT if self.tls else NGINX_PORT, timeout=30)
        if self.tls:
            context = ssl.create_default_context(cadata=pebble_root())
            raw = socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=30)
            connection.sock = context.wrap_socket(raw, server_hostname=self.name)
        headers = {"Host": self.name, "Authorization": self.authorization, "Connection": "close"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        for cookie in response.msg.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if value.strip() in ("", "deleted"):  # WordPress clears a cookie with a blank value
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        response.text = response.read().decode(errors="replace")
        connection.close()
        return response

    def get(self, path: str) -> http.client.HTTPResponse:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str]) -> http.client.HTTPResponse:
        return self.request("POST", path, form)

    def wordpress_sign_in(self, user: str, password: str) -> None:
        self.get("/wp-login.php")  # its test cookie, which the sign-in checks
        signed_in = self.post(
            "/wp-login.php",
            {"log": user, "pwd": password, "wp-submit": "Log In", "testcookie": "1", "redirect_to": "/wp-admin/"},
        )
        assert signed_in.status == 302 and any(name.startswith("wordpress_logged_in_") for name in self.cookies), (
            signed_in.status,
            re.findall(r'<div id="login_error">(.*?)</div>', signed_in.text, re.S),
            self.cookies,
        )


def captured_mail_is_shown_to_the_copys_administrators_only(live: Store, copy: Store) -> None:
    """The copy's captured mail, read where the merchant reads it: the staging page's link, into the copy's own
    wp-admin (Tools → Captured mail) through nginx and its basic auth, signed in with the live store's WordPress
    login (the copy has the live store's users). Another user of the copy and a visitor who is not signed in
    see none of it; the list is escaped, newest first, paginated, and cleared only with the page's nonce."""
    staging_page = Client()
    staging_page.force_login(live.customer)
    html = staging_page.get(f"/stores/{live.pk}/staging/").content.decode()
    link = re.search(rf'href="https://{re.escape(copy.domain)}(/wp-admin/tools\.php\?page=[\w-]+)"', html)
    assert link and "kept, never delivered" in html, html
    mail_page = link.group(1)

    staging = store_credentials(copy)
    auth = (staging["staging_user"], staging["staging_password"])
    visitor = NginxSession(copy.domain, auth=auth)
    # A password reset asked for on the copy's own sign-in page: WordPress mails the link, the copy keeps it.
    admin = store_credentials(live)
    reset = visitor.post("/wp-login.php?action=lostpassword", {"user_login": admin["admin_user"], "redirect_to": ""})
    assert reset.status == 302 and "checkemail=confirm" in reset.getheader("Location", ""), reset.text[-2000:]
    assert "Password Reset" in sql(copy, "SELECT subject FROM wp_shophosting_captured_mail ORDER BY id DESC LIMIT 1")
    # Not signed in: WordPress sends the visitor to its sign-in page, and nothing of the mail shows.
    anonymous = visitor.get(mail_page)
    assert anonymous.status == 302 and "wp-login.php" in anonymous.getheader("Location")
    assert "Password Reset" not in anonymous.text

    merchant = NginxSession(copy.domain, auth=auth)
    merchant.wordpress_sign_in(admin["admin_user"], admin["admin_password"])
    shown = merchant.get(mail_page)
    assert shown.status == 200 and "Captured mail" in shown.text, shown.text[-2000:]
    subjects = re.findall(r'<td class="subject">(.*?)</td>', shown.text)
    assert subjects[0].endswith("Password Reset") and subjects[1] == "Your order on staging", subjects  # newest first
    assert admin["admin_user"] in shown.text and "buyer@example.com" in shown.text
    assert "2 messages" in shown.text

    # A subscriber of the copy is refused the page (WordPress's own 403 for a capability it lacks).
    code, output = docker_client.container_exec(
        name=f"{copy.slug}-web",
        command=["php", "-r", ADD_SUBSCRIBER],
        environment={"SUBSCRIBER_PASSWORD": "a subscriber own password 5"},
    )
    assert (code, output.strip()) == (0, "created"), output
    subscriber = NginxSession(copy.domain, auth=auth)
    subscriber.wordpress_sign_in("shopper", "a subscriber own password 5")
    refused = subscriber.get(mail_page)
    assert refused.status == 403 and "Password Reset" not in refused.text, refused.text[-1000:]

    # What a message holds is shown as text, never as markup; 20 a page, the oldest on the last page.
    sql(
        copy,
        "INSERT INTO wp_shophosting_captured_mail (captured_at, recipients, subject, message, headers) VALUES"
        " (UTC_TIMESTAMP(), 'x@example.com', '<script>alert(1)</script>', '<img src=x onerror=alert(2)>', '')",
    )
    sql(
        copy,
        "INSERT INTO wp_shophosting_captured_mail (captured_at, recipients, subject, message, headers)"
        " SELECT UTC_TIMESTAMP(), 'x@example.com', CONCAT('Filler ', seq), 'body', '' FROM seq_0_to_19 ORDER BY seq",
    )
    first = merchant.get(mail_page).text
    assert "23 messages" in first and first.count('<tr class="shophosting-captured-message">') == 20
    assert "Filler 19" in first and "Your order on staging" not in first
    second = merchant.get(f"{mail_page}&paged=2").text
    assert "Your order on staging" in second and "Filler 19" not in second
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in second and "<script>alert(1)" not in second
    assert "&lt;img src=x onerror=alert(2)&gt;" in second and "<img src=x" not in second

    # Clearing needs the page's nonce: without it WordPress refuses and nothing goes.
    forged = merchant.post("/wp-admin/admin-post.php", {"action": "shophosting_captured_mail_clear"})
    assert forged.status == 403 and sql(copy, "SELECT COUNT(*) FROM wp_shophosting_captured_mail") == "23"
    refused_clear = subscriber.post("/wp-admin/admin-post.php", {"action": "shophosting_captured_mail_clear"})
    assert refused_clear.status == 403
    nonce = re.search(r'name="_wpnonce" value="([0-9a-f]+)"', first).group(1)
    cleared = merchant.post(
        "/wp-admin/admin-post.php",
        {"action": "shophosting_captured_mail_clear", "_wpnonce": nonce, "_wp_http_referer": mail_page},
    )
    assert cleared.status == 302 and "cleared=1" in cleared.getheader("Location"), cleared.text[-1000:]
    assert sql(copy, "SELECT COUNT(*) FROM wp_shophosting_captured_mail") == "0"
    assert "No mail has been captured" in merchant.get(mail_page).text


@pytest.mark.docker
def test_staging_copy_from_a_backup_push_undo_basic_auth_noindex_mail_suspend_resume_and_teardown(
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    restic_repository,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    run_backups_worker,
):
    capture = django_capture_on_commit_callbacks
    pro = Plan.objects.get(slug="woocommerce-commerce-pro")
    assert pro.staging
    customer = user_factory(email="staging@example.com")
    live = store_create(customer=customer, plan=pro, domain="staging-live.test", site_title="Stage Door")
    with capture(execute=True):
        store_order_paid(store_id=live.pk)
    run_provisioning_worker()  # the first backup it queues after its commit is not needed here
    live.refresh_from_db()
    assert live.status == Store.Status.ACTIVE, live.jobs.first().error

    # Create from a chosen backup: a store of its own beside the live one, with the live store's posts as that
    # backup kept them (not the one written since), on its platform name.
    insert_post(live, "Before the backup")
    backup = back_up(live, BackupRun.Kind.MANUAL, run_backups_worker, capture)
    insert_post(live, "After the backup")
    with capture(execute=True):
        created = staging_create(live_store_id=live.pk, source=str(backup.pk))
    run_provisioning_worker()
    created.refresh_from_db()
    assert created.status == StagingRun.Status.SUCCEEDED, created.job.error
    assert created.source_backup_id == backup.pk
    copy = created.staging
    copy.refresh_from_db()
    assert "Before the backup" in posts(copy) and "After the backup" not in posts(copy)
    assert posts(copy) == [title for title in posts(live) if title != "After the backup"]
    assert copy.status == Store.Status.ACTIVE and copy.staging_of_id == live.pk
    assert copy.host_id == live.host_id and copy.port != live.port
    assert list(copy.names.values_list("kind", flat=True)) == [StoreName.Kind.PLATFORM]
    assert copy.domain.endswith("-staging." + settings.PLATFORM_DOMAIN)
    assert list(store_list_for_customer(customer)) == [live]  # never listed as a store of its own
    assert "Hello world!" in posts(copy)

    # Its volumes count against the live store's disk allowance (and are recorded on its own row for staff).
    stores_disk_measure()
    live.refresh_from_db()
    copy.refresh_from_db()
    assert copy.disk_bytes > 1024 * 1024 and live.disk_staging_bytes == copy.disk_bytes
    assert live.disk_bytes > 2 * 1024 * 1024 + copy.disk_bytes  # its own database and files, and the copy's

    # Only the merchant gets in: 401 without the password, and never indexed.
    credentials = store_credentials(copy)
    refused = through_nginx(copy.domain)
    assert refused.status == 401
    assert refused.getheader("X-Robots-Tag") == "noindex, nofollow"
    allowed = through_nginx(copy.domain, auth=(credentials["staging_user"], credentials["staging_password"]))
    assert allowed.status == 200 and "Stage Door" in allowed.text
    assert allowed.getheader("X-Robots-Tag") == "noindex, nofollow"
    assert through_nginx(copy.domain, auth=("staging", "wrong")).status == 401
    assert through_nginx(live.domain).getheader("X-Robots-Tag") is None

    # Its WordPress keeps mail instead of sending it.
    code, output = docker_client.container_exec(name=f"{copy.slug}-web", command=["php", "-r", CAPTURE_MAIL])
    assert (code, output.strip()) == (0, "handled"), output
    assert sql(copy, "SELECT recipients, subject FROM wp_shophosting_captured_mail") == (
        "buyer@example.com\tYour order on staging"
    )
    captured_mail_is_shown_to_the_copys_administrators_only(live, copy)

    # A post changed on staging reaches live with a database-only push, behind a pre-push backup.
    sql(copy, "UPDATE wp_posts SET post_title = 'Changed on staging' WHERE post_title = 'Hello world!'")
    with capture(execute=True):
        push = staging_push(live_store_id=live.pk, scope=StagingRun.Scope.DATABASE)
    run_provisioning_worker()
    push.refresh_from_db()
    assert push.status == StagingRun.Status.SUCCEEDED, push.job.error
    assert "Changed on staging" in posts(live) and "Hello world!" not in posts(live)
    assert JobStep.objects.get(job=push.job, name="push_files").status == JobStep.Status.SKIPPED
    backup = BackupRun.objects.get(pk=int(push.backup_reference))
    assert backup.store_id == live.pk and backup.status == RunStatus.SUCCEEDED
    assert backup.get_kind_display() == "Before a push from staging"
    assert sql(live, "SHOW TABLES LIKE '%captured_mail'") == ""  # the copy's captured mail stays there
    live_page = through_nginx(live.domain)
    assert live_page.status == 200 and "Changed on staging" in live_page.text

    # The pre-push backup undoes it.
    with capture(execute=True):
        undo = staging_undo(push_run_id=push.pk)
    run_provisioning_worker()
    undo.refresh_from_db()
    assert undo.status == StagingRun.Status.SUCCEEDED, undo.job.error
    assert "Hello world!" in posts(live) and "Changed on staging" not in posts(live)
    assert "Changed on staging" in posts(copy)  # staging keeps its work

    # A database push limited to wp_posts leaves live's other tables (its title) as they are.
    sql(copy, "UPDATE wp_options SET option_value = 'Renamed on staging' WHERE option_name = 'blogname'")
    with capture(execute=True):
        tables_push = staging_push(live_store_id=live.pk, scope=StagingRun.Scope.DATABASE, tables="wp_posts")
    run_provisioning_worker()
    tables_push.refresh_from_db()
    assert tables_push.status == StagingRun.Status.SUCCEEDED, tables_push.job.error
    assert "Changed on staging" in posts(live)
    assert sql(live, "SELECT option_value FROM wp_options WHERE option_name = 'blogname'") == "Stage Door"

    # A files push: the copy's files reach live, without the copy's staging plugin.
    web(copy, f"mkdir -p {WP_CONTENT}/uploads && echo staged > {WP_CONTENT}/uploads/staged.txt")
    with capture(execute=True):
        files_push = staging_push(live_store_id=live.pk, scope=StagingRun.Scope.FILES)
    run_provisioning_worker()
    files_push.refresh_from_db()
    assert files_push.status == StagingRun.Status.SUCCEEDED, files_push.job.error
    assert web(live, f"cat {WP_CONTENT}/uploads/staged.txt") == "staged"
    assert web(live, f"ls {WP_CONTENT}/mu-plugins/shophosting-staging.php 2>/dev/null || echo absent") == "absent"
    assert web(copy, f"ls {WP_CONTENT}/mu-plugins/") == "shophosting-staging.php"

    # A push that fails after its backup puts live back (here the copy's web container is gone mid-way).
    insert_post(copy, "Only on staging")
    docker_client.container_remove(name=f"{copy.slug}-web")
    live_posts = posts(live)
    assert "Only on staging" not in live_posts
    with capture(execute=True):
        broken_push = staging_push(live_store_id=live.pk, scope=StagingRun.Scope.BOTH)
    run_provisioning_worker()
    broken_push.refresh_from_db()
    assert broken_push.status == StagingRun.Status.FAILED and broken_push.backup_reference
    steps = dict(broken_push.job.steps.values_list("name", "status"))
    assert steps["push_files"] == JobStep.Status.FAILED and steps["put_back"] == JobStep.Status.SUCCEEDED
    assert JobStep.objects.get(job=broken_push.job, name="push_database").status == JobStep.Status.SUCCEEDED
    assert posts(live) == live_posts and through_nginx(live.domain).status == 200  # its database put back too

    # A refresh: the copy becomes live again (its renamed title goes), and stays a staging copy.
    with capture(execute=True):
        refresh = staging_refresh(live_store_id=live.pk)
    run_provisioning_worker()
    refresh.refresh_from_db()
    assert refresh.status == StagingRun.Status.SUCCEEDED, refresh.job.error
    assert sql(copy, "SELECT option_value FROM wp_options WHERE option_name = 'blogname'") == "Stage Door"
    assert posts(copy) == posts(live)
    assert through_nginx(copy.domain).status == 401

    # Suspending the live store (whoever asks: the suspend kind) suspends its copy too: stopped, and its name
    # answers the maintenance page like any suspended store (never indexed); resuming the live store starts it.
    staging_auth = (credentials["staging_user"], credentials["staging_password"])
    with capture(execute=True):
        job_enqueue(store_id=live.pk, kind=ProvisioningJob.Kind.SUSPEND)
    run_provisioning_worker()
    live.refresh_from_db()
    copy.refresh_from_db()
    assert live.status == Store.Status.SUSPENDED, live.jobs.first().error
    assert copy.status == Store.Status.SUSPENDED
    assert docker_client.container_state(name=f"{copy.slug}-web")[0] != "running"
    assert docker_client.container_state(name=f"{copy.slug}-db")[0] != "running"
    suspended = through_nginx(copy.domain)
    assert suspended.status == 503 and "temporarily unavailable" in suspended.text
    assert suspended.getheader("X-Robots-Tag") == "noindex, nofollow"
    with pytest.raises(ValidationError, match="it must be live first"):
        staging_refresh(live_store_id=live.pk)
    with capture(execute=True):
        job_enqueue(store_id=live.pk, kind=ProvisioningJob.Kind.RESUME)
    run_provisioning_worker()
    live.refresh_from_db()
    copy.refresh_from_db()
    assert live.status == Store.Status.ACTIVE and copy.status == Store.Status.ACTIVE, live.jobs.first().error
    resumed = through_nginx(copy.domain, auth=staging_auth)
    assert resumed.status == 200 and "Stage Door" in resumed.text

    # Tearing the live store down removes its staging copy: containers, volumes, vhost, password file.
    with capture(execute=True):
        job_enqueue(store_id=live.pk, kind=ProvisioningJob.Kind.TEARDOWN)
    run_provisioning_worker()
    live.refresh_from_db()
    copy.refresh_from_db()
    assert live.status == Store.Status.DELETED, live.jobs.first().error
    assert copy.status == Store.Status.DELETED and copy.port is None
    assert not any(docker_client.labelled_objects(label=f"shophosting.store={copy.pk}").values())
    assert not proxy.vhost_path(copy.domain).exists()
    assert not Path(proxy.basic_auth_path(copy.pk)).exists()


def test_staging_is_refused_without_the_plan_feature_and_bad_push_requests_change_nothing(store_in_status):
    live = store_in_status(Store.Status.ACTIVE)  # Commerce Core: no staging
    assert not live.plan.staging
    stores, jobs = Store.objects.count(), ProvisioningJob.objects.count()
    with pytest.raises(ValidationError, match="Staging copies are not part of the Commerce Core plan"):
        staging_create(live_store_id=live.pk)
    assert (Store.objects.count(), ProvisioningJob.objects.count()) == (stores, jobs)

    with pytest.raises(ValidationError, match="has no staging copy"):
        staging_push(live_store_id=live.pk, scope="database")
    with pytest.raises(ValidationError, match="not table names: wp_posts;DROP"):
        staging_push(live_store_id=live.pk, scope="database", tables="wp_options, wp_posts;DROP")
    with pytest.raises(ValidationError, match="database push only"):
        staging_push(live_store_id=live.pk, scope="files", tables=["wp_posts"])
    with pytest.raises(ValidationError, match="Push files, the database or both"):
        staging_push(live_store_id=live.pk, scope="everything")
    assert ProvisioningJob.objects.count() == jobs and not StagingRun.objects.exists()


def test_the_staging_page_creates_a_copy_on_a_plan_with_staging_and_explains_the_refusal_on_one_without(
    client, store_in_status
):
    core = store_in_status(Store.Status.ACTIVE)
    client.force_login(core.customer)
    page = client.get(f"/stores/{core.pk}/staging/")
    assert page.status_code == 200 and "does not include it" in page.content.decode()
    refused = client.post(f"/stores/{core.pk}/staging/create/", follow=True)
    assert "Staging copies are not part of the Commerce Core plan" in refused.content.decode()
    assert not core.staging_copies.exists()

    live = store_in_status(Store.Status.ACTIVE, plan=Plan.objects.get(slug="woocommerce-commerce-pro"))
    client.force_login(live.customer)
    assert "Staging copy" in client.get(f"/stores/{live.pk}/").content.decode()
    created = client.post(f"/stores/{live.pk}/staging/create/")
    copy = live.staging_copies.get()
    run = StagingRun.objects.get(staging=copy)
    assert created.status_code == 302 and created["Location"] == f"/stores/{copy.pk}/jobs/{run.job_id}/"
    assert copy.status == Store.Status.QUEUED and run.job.kind == "staging_create"
    page = client.get(f"/stores/{live.pk}/staging/").content.decode()
    assert copy.domain in page and store_credentials(copy)["staging_password"] not in page
    assert f'href="https://{copy.domain}/wp-admin/tools.php?page=shophosting-captured-mail"' in page  # its kept mail
    revealed = client.post(f"/stores/{live.pk}/staging/reveal/").content.decode()
    assert store_credentials(copy)["staging_password"] in revealed
    again = client.post(f"/stores/{live.pk}/staging/create/", follow=True).content.decode()
    assert "busy" in again or "has a staging copy already" in again  # the copy's setup holds the live store
    assert live.staging_copies.count() == 1
    assert client.get(f"/stores/{copy.pk}/staging/").status_code == 404  # a copy has no copy


def test_a_copy_that_cannot_be_placed_fails_with_its_run_and_staff_retry_it_as_a_new_run(store_in_status):
    """The live store was never placed on a host here, so its copy has no host to go beside: the setup job
    fails at its first step, the copy is failed, and the engine's Retry makes a new run of the same copy."""
    live = store_in_status(Store.Status.ACTIVE, plan=Plan.objects.get(slug="woocommerce-commerce-pro"))
    created = staging_create(live_store_id=live.pk)
    with pytest.raises(NoCapacity):  # the worker's call re-raises for RQ's record, after the job failed
        job_execute(job_id=created.job_id)
    created.refresh_from_db()
    copy = created.staging
    copy.refresh_from_db()
    assert created.status == StagingRun.Status.FAILED and "has no room" in created.error
    assert copy.status == Store.Status.FAILED
    assert store_history(live)[0].message == "The staging copy could not be made."
    job = job_retry(job_id=created.job_id)
    again = StagingRun.objects.get(job=job)
    assert (again.kind, again.staging_id, job.store_id, job.kind) == ("create", copy.pk, copy.pk, "staging_create")


def test_a_copy_from_a_backup_that_is_not_the_stores_or_not_usable_is_refused_and_changes_nothing(
    client, store_in_status
):
    pro = Plan.objects.get(slug="woocommerce-commerce-pro")
    live = store_in_status(Store.Status.ACTIVE, plan=pro)
    other = store_in_status(Store.Status.ACTIVE, plan=pro)
    done = dict(status=RunStatus.SUCCEEDED, snapshot_id="ab" * 32, finished_at=timezone.now())
    kept = BackupRun.objects.create(store=live, kind=BackupRun.Kind.MANUAL, **done)
    theirs = BackupRun.objects.create(store=other, kind=BackupRun.Kind.MANUAL, **done)
    failed = BackupRun.objects.create(store=live, kind=BackupRun.Kind.MANUAL, status=RunStatus.FAILED)
    expired = BackupRun.objects.create(store=live, kind=BackupRun.Kind.SCHEDULED, forgotten_at=timezone.now(), **done)
    broken = BackupRun.objects.create(
        store=live, kind=BackupRun.Kind.MANUAL, verify_error="dump does not import", **done
    )
    stores, jobs = Store.objects.count(), ProvisioningJob.objects.count()
    for source, refusal in (
        (theirs.pk, "not one of"),
        (failed.pk, "did not complete"),
        (expired.pk, "no longer kept"),
        (broken.pk, "failed its last restore check"),
        ("yesterday", "Choose a live copy or one of your store's backups"),
    ):
        with pytest.raises(ValidationError, match=refusal):
            staging_create(live_store_id=live.pk, source=source)
    assert (Store.objects.count(), ProvisioningJob.objects.count()) == (stores, jobs)
    assert not live.staging_copies.exists() and not StagingRun.objects.exists()

    # The page offers a live copy and the store's kept backups only, and shows a refusal as it is worded.
    client.force_login(live.customer)
    page = client.get(f"/stores/{live.pk}/staging/").content.decode()
    assert 'value="live" selected' in page and f'value="{kept.pk}"' in page
    assert not any(f'value="{run.pk}"' in page for run in (theirs, failed, expired, broken))
    refused = client.post(f"/stores/{live.pk}/staging/create/", {"source": theirs.pk}, follow=True)
    assert f"That backup is not one of {live.domain}" in refused.content.decode()
    assert not live.staging_copies.exists()

    created = client.post(f"/stores/{live.pk}/staging/create/", {"source": kept.pk})
    run = StagingRun.objects.get(live=live)
    assert created.status_code == 302 and run.source_backup_id == kept.pk
    assert run.events.get().note == f"create requested from backup #{kept.pk} (snapshot abababab)"


def test_a_suspend_waits_for_a_staging_copy_busy_with_its_own_job_and_changes_nothing(store_in_status):
    """The copy's setup job still runs (queued here): the live store's suspend fails at its first step, saying
    why, before its own containers or vhost are touched; the live store stays live and the copy is as it was."""
    live = store_in_status(Store.Status.ACTIVE, plan=Plan.objects.get(slug="woocommerce-commerce-pro"))
    created = staging_create(live_store_id=live.pk)
    suspend = job_enqueue(store_id=live.pk, kind=ProvisioningJob.Kind.SUSPEND)
    with pytest.raises(ProvisioningError, match=r"the staging copy .* is busy \(staging_create"):
        job_execute(job_id=suspend.pk)
    steps = dict(suspend.steps.values_list("name", "status"))
    assert steps == {
        "staging": JobStep.Status.FAILED,
        "maintenance": JobStep.Status.SKIPPED,  # the engine's word for steps a failure left undone
        "stop": JobStep.Status.SKIPPED,
    }
    live.refresh_from_db()
    created.staging.refresh_from_db()
    assert live.status == Store.Status.ACTIVE and created.staging.status == Store.Status.QUEUED


def test_the_backup_a_push_takes_is_listed_for_what_it_is_beside_an_updates(client, store_in_status):
    """Both are the update's safety net, each labelled by its own kind (BackupRun.Kind, the one place)."""
    live = store_in_status(Store.Status.ACTIVE, plan=Plan.objects.get(slug="woocommerce-commerce-pro"))
    done = dict(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
    BackupRun.objects.create(store=live, kind=BackupRun.Kind.PRE_UPDATE, snapshot_id="cd" * 32, **done)
    BackupRun.objects.create(store=live, kind=BackupRun.Kind.PRE_PUSH, snapshot_id="ef" * 32, **done)
    client.force_login(live.customer)
    page = client.get(f"/stores/{live.pk}/backups/").content.decode()
    assert "<td>Before a push from staging</td>" in page and "<td>Before an update</td>" in page
    assert "(before a push from staging)" in client.get(f"/stores/{live.pk}/staging/").content.decode()


@pytest.mark.docker
def test_a_magento_staging_copy_with_standin_images_has_its_own_base_urls_no_mail_and_pushes_keep_lives_install(
    settings,
    user_factory,
    woo_plan,  # seeds the whole plan catalogue
    store_images,
    clean_test_stores,
    restic_repository,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    run_backups_worker,
):
    """Magento is obtainable nowhere here: the STAND-IN web and search images (their bin/magento config:set
    keeps base URLs and env.php's values in the `env` volume's state file), real MariaDB, Redis and Varnish.
    Proves the copy's wiring (database, its own base URLs, mail disabled, behind its password) and that a
    push never sends live's install configuration; not Magento itself."""
    from tests.test_confinement import exec_in, provision

    capture = django_capture_on_commit_callbacks
    settings.STORE_SMTP_HOST, settings.STORE_SMTP_PORT, settings.STORE_SMTP_SECURITY = ("relay.example.net", 587, "tls")
    settings.STORE_SMTP_USER, settings.STORE_SMTP_PASSWORD = "shops", "magento-staging-relay-pw"
    plan = Plan.objects.get(slug="magento-commerce-pro")
    assert plan.staging
    live = provision(
        customer=user_factory(),
        plan=plan,
        domain="mage-live.test",
        title="Mage Live",
        capture=capture,
        run_worker=run_provisioning_worker,
    )
    run_backups_worker()  # the first backup its setup queued holds the store until it is done
    with capture(execute=True):
        created = staging_create(live_store_id=live.pk)
    run_provisioning_worker()
    created.refresh_from_db()
    assert created.status == StagingRun.Status.SUCCEEDED, created.job.error
    copy = created.staging
    copy.refresh_from_db()
    assert copy.status == Store.Status.ACTIVE and copy.platform == "magento"

    # Its Magento reaches its own database with live's install configuration, on its own base URLs.
    auth = (store_credentials(copy)["staging_user"], store_credentials(copy)["staging_password"])
    assert through_nginx(copy.domain).status == 401
    page = through_nginx(copy.domain, auth=auth)
    assert page.status == 200 and "<title>Mage Live</title>" in page.text, page.text
    assert page.getheader("X-Robots-Tag") == "noindex, nofollow"
    assert "database: ok" in page.text
    assert re.search(rf"<li>base URL: https?://{re.escape(copy.domain)}/</li>", page.text), page.text
    assert f"secure base URL: https://{copy.domain}/" in page.text
    live_page = through_nginx(live.domain)
    assert re.search(r"<li>base URL: https?://mage-live\.test/</li>", live_page.text), live_page.text

    # Mail: Magento's "Disable Email Communications", locked as a configuration variable; no relay at all.
    environment = dict(
        item.split("=", 1) for item in docker_client.client().containers.get(f"{copy.slug}-web").attrs["Config"]["Env"]
    )
    assert environment["CONFIG__DEFAULT__SYSTEM__SMTP__DISABLE"] == "1"
    assert not any(name.startswith("CONFIG__DEFAULT__SYSTEM__SMTP__HOST") for name in environment)
    assert "MAGENTO_SMTP_PASSWORD_FILE" not in environment
    assert environment["CONFIG__DEFAULT__PAYPAL__WPP__SANDBOX_FLAG"] == "1"
    assert "mail: sendmail" in page.text  # the stand-in's word for "no SMTP transport configured"
    code, _ = exec_in(f"{copy.slug}-web", "ls /run/secrets/smtp_password")
    assert code != 0

    # A push of both: media reaches live, live's install configuration (env.php) stays its own, and live's
    # base URLs are set back after its database came from staging.
    exec_in(f"{copy.slug}-web", "echo staged > /var/www/html/pub/media/staged.txt")
    with capture(execute=True):
        push = staging_push(live_store_id=live.pk, scope=StagingRun.Scope.BOTH)
    run_provisioning_worker()
    push.refresh_from_db()
    assert push.status == StagingRun.Status.SUCCEEDED, push.job.error
    assert exec_in(f"{live.slug}-web", "cat /var/www/html/pub/media/staged.txt")[1].strip() == "staged"
    assert JobStep.objects.get(job=push.job, name="urls").status == JobStep.Status.SUCCEEDED
    live_page = through_nginx(live.domain)
    assert live_page.status == 200 and "<title>Mage Live</title>" in live_page.text
    assert re.search(r"<li>base URL: https?://mage-live\.test/</li>", live_page.text), live_page.text
    assert "mail: smtp relay.example.net:587" in live_page.text  # live still sends through the relay
