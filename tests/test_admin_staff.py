"""Staff accounts, staff two-factor, the audit trail of staff actions, the dashboard, system health, the log
viewer and flat list queries in the admin."""

import logging
from datetime import timedelta

import django_rq
import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, User
from accounts.roles import Role
from accounts.services import staff_user_ensure
from billing.models import Subscription
from provisioning.models import JobStep, ProvisioningJob
from stores.models import Host, Store
from tests.test_billing_pages import NOW, overview_fixtures  # noqa: F401 (a fixture, used by name)

pytestmark = pytest.mark.django_db
STAFF_LIST = reverse("admin:accounts_staffuser_changelist")


def events(name: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event=name).order_by("pk"))


# --- Admin users ---------------------------------------------------------------------------------------


def test_a_super_admin_adds_staff_who_get_a_temporary_password_by_email(client, staff_user):
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:accounts_staffuser_add"),
        {"email": "Newbie@Example.com", "first_name": "New", "last_name": "Bie", "role": "support"},
        follow=True,
    )

    assert "newbie@example.com was e-mailed a temporary password" in response.content.decode().lower()
    newbie = User.objects.get(email="newbie@example.com")
    assert newbie.is_staff and not newbie.is_superuser and newbie.must_change_password
    assert list(newbie.groups.values_list("name", flat=True)) == ["support"]
    [email] = mail.outbox
    assert "created your staff account" in email.body and email.to == ["newbie@example.com"]
    [created] = events("staff_created")
    assert created.actor == staff_user and created.detail == {"user": "newbie@example.com", "role": "support"}

    duplicate = client.post(reverse("admin:accounts_staffuser_add"), {"email": "newbie@example.com", "role": "admin"})
    assert (
        "already exists" in duplicate.content.decode() and User.objects.filter(email="newbie@example.com").count() == 1
    )
    bad = client.post(reverse("admin:accounts_staffuser_add"), {"email": "not an address", "role": "wizard"})
    assert bad.status_code == 200 and "Enter a valid email address" in bad.content.decode()


def test_role_changes_deactivation_and_deletion_never_touch_your_own_account(client, staff_user):
    colleague, _ = staff_user_ensure(email="colleague@example.com", role=Role.ADMIN, password="colleague pass 1")
    client.force_login(staff_user)
    change = reverse("admin:accounts_staffuser_change", args=[colleague.pk])

    client.post(change, {"email": colleague.email, "first_name": "Col", "last_name": "League", "role": "support"})
    colleague.refresh_from_db()
    assert colleague.first_name == "Col" and list(colleague.groups.values_list("name", flat=True)) == ["support"]
    assert events("staff_role_changed")[0].detail == {"user": colleague.email, "old": "admin", "new": "support"}

    # Your own page: the role is read-only, and the deactivate action refuses you.
    own_page = client.get(reverse("admin:accounts_staffuser_change", args=[staff_user.pk])).content.decode()
    assert 'name="role"' not in own_page
    both = [colleague.pk, staff_user.pk]
    page = client.post(STAFF_LIST, {"action": "deactivate", "_selected_action": both}, follow=True).content.decode()
    assert "You cannot deactivate your own account." in page and "Deactivated: colleague@example.com" in page
    colleague.refresh_from_db()
    staff_user.refresh_from_db()
    assert not colleague.is_active and staff_user.is_active
    assert [e.detail["user"] for e in events("staff_deactivated")] == ["colleague@example.com"]

    # Deletion: one at a time, never your own; it is audited.
    assert "delete_selected" not in client.get(STAFF_LIST).content.decode()
    assert client.get(reverse("admin:accounts_staffuser_delete", args=[staff_user.pk])).status_code == 403
    client.post(reverse("admin:accounts_staffuser_delete", args=[colleague.pk]), {"post": "yes"})
    assert not User.objects.filter(pk=colleague.pk).exists()
    assert events("admin_delete")[0].detail["object"] == "colleague@example.com"


def test_admins_view_staff_but_cannot_change_them(client):
    admin_user, _ = staff_user_ensure(email="ops@example.com", role=Role.ADMIN, password="ops password 123")
    other, _ = staff_user_ensure(email="other@example.com", role=Role.SUPPORT, password="other password 1")
    client.force_login(admin_user)
    change = reverse("admin:accounts_staffuser_change", args=[other.pk])

    assert client.get(STAFF_LIST).status_code == 200
    assert client.post(change, {"email": other.email, "role": "super_admin"}).status_code == 403
    assert client.get(reverse("admin:accounts_staffuser_add")).status_code == 403
    other.refresh_from_db()
    assert not other.is_superuser


def test_staff_two_factor_is_mandatory_when_the_setting_is_on(client, staff_user, settings):
    settings.STAFF_TWO_FACTOR_REQUIRED = True
    client.post(reverse("staff_login"), {"username": staff_user.email, "password": "staff password 123"})

    for url in ("/admin/", "/admin/stores/store/", "/django-rq/", "/cms-admin/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:two_factor")), url
    setup = reverse("accounts:two_factor") + "?next=/admin/"
    client.post(setup, {"action": "start"})
    page = client.get(setup).content.decode()
    assert "Staff accounts need two-factor sign-in" in page
    device = TOTPDevice.objects.get(user=staff_user, confirmed=False)
    done = client.post(setup, {"action": "confirm", "token": f"{totp(device.bin_key):06d}"}).content.decode()
    assert 'href="/admin/"' in done  # "Done" leads back to the admin
    assert client.get("/admin/").status_code == 200  # this session proved the second factor just now
    refused = client.post(reverse("accounts:two_factor"), {"action": "disable", "password": "staff password 123"})
    assert refused.status_code == 200 and TOTPDevice.objects.filter(user=staff_user, confirmed=True).exists()

    # A new sign-in asks for the code before any admin page.
    client.post(reverse("admin:logout"))
    client.post(reverse("staff_login"), {"username": staff_user.email, "password": "staff password 123"})
    response = client.get("/admin/")
    assert response["Location"].startswith(reverse("accounts:second_factor"))
    with time_machine.travel(timezone.now() + timedelta(seconds=40)):  # the next code of the 30 s window
        client.post(reverse("accounts:second_factor"), {"token": f"{totp(device.bin_key):06d}", "next": "/admin/"})
        assert client.get("/admin/").status_code == 200


# --- Audit -----------------------------------------------------------------------------------------------


def test_every_admin_change_and_action_writes_an_audit_event_with_actor_and_ip(client, staff_user, user_factory):
    customer = user_factory(email="shopper@example.com", company="Old Name")
    client.force_login(staff_user)
    change = reverse("admin:accounts_customer_change", args=[customer.pk])
    form = {
        "email": customer.email,
        "first_name": "",
        "last_name": "",
        "company": "New Name",
        "stores-TOTAL_FORMS": "0",
        "stores-INITIAL_FORMS": "0",
    }

    response = client.post(change, form, REMOTE_ADDR="127.0.0.7")
    assert response.status_code == 302, response.content.decode()[:3000]
    client.post(
        reverse("admin:accounts_customer_changelist"),
        {"action": "deactivate", "_selected_action": [customer.pk]},
        REMOTE_ADDR="127.0.0.7",
    )
    host = Host.objects.create(
        name="spare",
        docker_url="unix:///nowhere.sock",
        port_range_start=1,
        port_range_end=2,
        memory_capacity_mb=1024,
        cpu_capacity=1,
    )
    client.post(reverse("admin:stores_host_delete", args=[host.pk]), {"post": "yes"}, REMOTE_ADDR="127.0.0.7")

    [changed] = events("admin_change")
    assert changed.actor == staff_user and changed.ip_address == "127.0.0.7"
    assert changed.detail["model"] == "accounts.customer" and "Company" in str(changed.detail["change"])
    [action] = events("admin_action")
    assert action.detail == {"model": "accounts.customer", "action": "deactivate", "object_ids": [str(customer.pk)]}
    assert events("customer_deactivated")[0].detail == {"user": "shopper@example.com"}
    assert events("admin_delete")[0].detail["model"] == "stores.host"
    customer.refresh_from_db()
    assert customer.company == "New Name" and not customer.is_active

    trail = client.get(reverse("admin:accounts_auditevent_changelist") + f"?actor={staff_user.pk}").content.decode()
    assert "admin_change" in trail and "127.0.0.7" in trail
    assert client.get(reverse("admin:accounts_auditevent_change", args=[changed.pk])).status_code == 200
    assert (
        client.post(reverse("admin:accounts_auditevent_delete", args=[changed.pk]), {"post": "yes"}).status_code == 403
    )


# --- Dashboard -------------------------------------------------------------------------------------------


def test_dashboard_counts_money_and_recent_failures(
    client,
    staff_user,
    overview_fixtures,  # noqa: F811
    user_factory,
    woo_plan,
    store_in_status,
):
    SS = Subscription.Status
    for email, states in [
        ("a@example.com", [SS.ACTIVE]),
        ("b@example.com", [SS.PAST_DUE]),
        ("c@example.com", [SS.ABANDONED, SS.ACTIVE]),
        ("d@example.com", []),
    ]:
        customer = user_factory(email=email)
        for state in states:
            Subscription.objects.create(customer=customer, plan=woo_plan, status=state)
    blocked = user_factory(email="blocked@example.com")
    User.objects.filter(pk=blocked.pk).update(is_active=False)
    failing = store_in_status("failed", customer=User.objects.get(email="d@example.com"), domain="f.test")
    job = ProvisioningJob.objects.create(
        store=failing, kind="provision", status="failed", finished_at=timezone.now(), error="boom"
    )
    JobStep.objects.create(job=job, name="app", title="Start the web server", order=1, status="failed")
    client.force_login(staff_user)

    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("admin:index"))

    body = page.content.decode()
    dashboard = page.context["dashboard"]
    # c's newest subscription is the active one; d has none; blocked accounts are counted apart.
    assert dashboard["customers"] == {"Active": 2, "Past due": 1, "No subscription": 1, "Account deactivated": 1}
    assert dashboard["stores"] == {"Failed": 1}
    assert '<p class="big" data-figure="mrr">$496.00</p>' in body  # 9 900 + 9 900 + 29 800 cents in Stripe
    assert "Start the web server" in body and reverse("admin:job_retry", args=[job.pk]) in body
    assert [q.name for q in dashboard["queues"]] == ["default", "provisioning", "backups", "pool"]
    assert dashboard["capacity"][0].host.name == "local"


def test_the_slow_figures_are_computed_once_for_all_staff_and_say_how_fresh_they_are(
    client, staff_user, settings, woo_plan, store_in_status
):
    from django.core.cache import cache

    from shophosting.staff.selectors import FIGURES_CACHE_KEY

    settings.STAFF_FIGURES_SECONDS = 60
    cache.delete(FIGURES_CACHE_KEY)
    store_in_status("active", domain="one.test")
    client.force_login(staff_user)
    with CaptureQueriesContext(connection) as first:
        page = client.get(reverse("admin:index"))
    assert page.context["dashboard"]["stores"] == {"Active": 1}
    assert "refreshed every 60 s; incidents, jobs, queues and tickets are live" in page.content.decode()

    # Another member of staff a moment later: the same figures, without computing them again.
    store_in_status("active", domain="two.test")
    other, _ = staff_user_ensure(email="second@example.com", role=Role.ADMIN, password="second password 1")
    client.force_login(other)
    with CaptureQueriesContext(connection) as second:
        page = client.get(reverse("admin:index"))
    assert page.context["dashboard"]["stores"] == {"Active": 1}
    assert len(second) < len(first) - 5, (len(first), len(second))

    # When they are due again (or the cache is emptied) the new store is counted.
    cache.delete(FIGURES_CACHE_KEY)
    assert client.get(reverse("admin:index")).context["dashboard"]["stores"] == {"Active": 2}
    cache.delete(FIGURES_CACHE_KEY)


def test_quick_actions_run_for_real_and_are_audited(client, staff_user):
    from backups.models import BackupRun

    queue = django_rq.get_queue("default")
    queue.enqueue("tests.no_such_module.no_such_function")
    django_rq.get_worker("default").work(burst=True)
    # Every queue's, as the quick action clears them all (other tests leave failed jobs on theirs, the pool's too).
    failed = sum(django_rq.get_queue(name).failed_job_registry.count for name in settings.RQ_QUEUES)
    assert queue.failed_job_registry.count >= 1
    client.force_login(staff_user)

    cleared = client.post(reverse("admin:rq_failed_clear"), follow=True).content.decode()
    # Inside the test transaction nothing commits, so the run is recorded but not handed to a worker.
    backup = client.post(reverse("admin:system_backup_run"), follow=True).content.decode()

    assert f"Cleared {failed} failed RQ job(s)." in cleared and queue.failed_job_registry.count == 0
    run = BackupRun.objects.get(kind=BackupRun.Kind.SYSTEM)
    assert f"System backup #{run.pk} is queued." in backup
    assert events("rq_failed_jobs_cleared")[0].detail == {"cleared": failed}
    assert events("system_backup_requested")[0].detail == {"backup_run_id": run.pk}
    again = client.post(reverse("admin:system_backup_run"), follow=True).content.decode()
    assert "already running" in again  # one platform backup at a time


# --- System health and logs ------------------------------------------------------------------------------


def _certificate_expiring_in(domain: str, days: int) -> None:
    """A self-signed certificate where the ACME client keeps the store's certificate."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from provisioning.acme_client import certificate_paths

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days, hours=1))
        .sign(key, hashes.SHA256())
    )
    path = certificate_paths(domain).fullchain_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def test_system_health_reports_each_service_host_disk_and_certificate(
    client, staff_user, docker_engine, nginx_server, store_in_status
):
    soon, later, none = (
        store_in_status("active", domain=domain)
        for domain in ("soon.health.test", "later.health.test", "none.health.test")
    )
    _certificate_expiring_in(soon.proxy_key, 10)
    _certificate_expiring_in(later.proxy_key, 80)
    Host.objects.create(
        name="broken-host",
        docker_url="unix:///tmp/no-docker-here.sock",
        port_range_start=20000,
        port_range_end=20009,
        memory_capacity_mb=4096,
        cpu_capacity=2,
    )
    client.force_login(staff_user)
    # The page reads Docker's state as the default worker's job recorded it (the web tier has no docker group).
    from shophosting import jobs

    jobs.docker_engines_check()

    page = client.get(reverse("admin:system_health"))

    health = page.context["health"]
    assert health["checks"]["database"]["ok"] and health["checks"]["redis"]["ok"] and health["checks"]["docker"]["ok"]
    assert health["nginx"]["ok"] and health["nginx"]["config"] == "ok", health["nginx"]
    hosts = {h["capacity"].host.name: h for h in health["hosts"]}
    assert hosts["local"]["engine"]["ok"] and hosts["local"]["engine"]["server_version"]
    assert not hosts["broken-host"]["engine"]["ok"] and "does not answer" in hosts["broken-host"]["engine"]["error"]
    assert hosts["broken-host"]["capacity"].ports_total == 10
    assert {d["label"] for d in health["disks"]} >= {"backup repository", "logs"}
    assert all(d["total_bytes"] > 0 for d in health["disks"])
    certificates = [(row["store"].domain, row["days_left"], row["warn"]) for row in health["certificates"]]
    assert certificates == [
        ("none.health.test", None, True),
        ("soon.health.test", 10, True),
        ("later.health.test", 80, False),
    ]
    assert not health["healthy"]  # the broken host is active, so the page says so
    body = page.content.decode()
    assert "Something needs attention" in body and "no-docker-here.sock" in body


def test_the_log_viewer_tails_named_logs_with_a_level_filter_and_never_takes_a_path(client, staff_user, settings):
    logger = logging.getLogger("django")
    logger.info("an unremarkable request")
    logger.warning("disk is filling up")
    try:
        raise ValueError("the worst")
    except ValueError:
        logger.exception("a request crashed")
    client.force_login(staff_user)

    warnings = client.get(reverse("admin:logs"), {"log": "web", "level": "WARNING"})
    everything = client.get(reverse("admin:logs"), {"log": "web", "level": "DEBUG"})

    text = warnings.content.decode()
    assert "disk is filling up" in text and "a request crashed" in text and "ValueError: the worst" in text
    assert "an unremarkable request" not in text
    assert "an unremarkable request" in everything.content.decode()
    crashed = [e for e in warnings.context["entries"] if "a request crashed" in e.text][0]
    assert crashed.level == "ERROR" and "Traceback" in crashed.text  # the traceback stays with its entry
    assert client.get(reverse("admin:logs"), {"log": "../../etc/passwd"}).status_code == 404
    assert client.get(reverse("admin:logs"), {"log": "/etc/passwd"}).status_code == 404
    security = client.get(reverse("admin:logs"), {"log": "security"}).content.decode()
    assert "login_success" in security or "Nothing at this level yet" in security
    assert set(warnings.context["logs"]) == set(settings.STAFF_LOG_FILES)


# --- Flat list queries -----------------------------------------------------------------------------------


def _queries_for(client, url) -> int:
    """Queries of one list page, without the session's own (the idle timeout refreshes it now and then,
    in a savepoint)."""
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(
        [q for q in captured.captured_queries if "django_session" not in q["sql"] and "SAVEPOINT" not in q["sql"]]
    )


def test_customer_store_and_job_lists_use_as_many_queries_for_1000_rows_as_for_10(client, staff_user, woo_plan):
    def add_rows(start: int, count: int) -> None:
        customers = User.objects.bulk_create(
            User(email=f"bulk{i}@example.com", password="!") for i in range(start, start + count)
        )
        stores = Store.objects.bulk_create(
            Store(
                customer=c, plan=woo_plan, platform="woocommerce", domain=f"b{c.pk}.test", live_domain=f"b{c.pk}.test"
            )
            for c in customers
        )
        ProvisioningJob.objects.bulk_create(ProvisioningJob(store=s, kind="provision", status="failed") for s in stores)
        Subscription.objects.bulk_create(Subscription(customer=c, plan=woo_plan) for c in customers)

    urls = [
        reverse("admin:accounts_customer_changelist"),
        reverse("admin:stores_store_changelist"),
        reverse("admin:provisioning_provisioningjob_changelist"),
        reverse("admin:accounts_staffuser_changelist"),
    ]
    client.force_login(staff_user)
    add_rows(0, 10)
    small = {url: _queries_for(client, url) for url in urls}

    add_rows(10, 990)
    large = {url: _queries_for(client, url) for url in urls}

    assert large == small


def test_store_operations_refuse_bad_input_with_a_clear_message(client, staff_user, woo_plan, user_factory):
    store = Store.objects.create(customer=user_factory(), plan=woo_plan, platform="woocommerce", domain="op.test")
    client.force_login(staff_user)
    operate = reverse("admin:store_operate")

    unknown = client.post(operate, {"store": store.pk, "operation": "explode"}, follow=True).content.decode()
    missing = client.post(operate, {"store": 999_999, "operation": "restart"}, follow=True).content.decode()
    wrong_state = client.post(operate, {"store": store.pk, "operation": "resume"}, follow=True).content.decode()
    elsewhere = client.post(operate, {"store": store.pk, "operation": "x", "next": "https://evil.example/"})

    nameless = client.post(operate, {"store": "nowhere.test", "operation": "restart"}, follow=True).content.decode()
    assert all("Name a store (its number or domain) and an operation" in page for page in (unknown, missing, nameless))
    assert "Not started:" in wrong_state and "a resume job needs it to be suspended" in wrong_state
    assert elsewhere["Location"] == reverse("admin:index")  # never redirected off-site
    assert not ProvisioningJob.objects.filter(store=store).exists()
    assert not AuditEvent.objects.filter(event__startswith="store_").exists()

    # The domain names the store as well as its number does (a typed name, not a list of every store).
    by_name = client.post(operate, {"store": " OP.test ", "operation": "resume"}, follow=True).content.decode()
    assert "a resume job needs it to be suspended" in by_name
