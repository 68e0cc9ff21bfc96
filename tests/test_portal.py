"""The customer portal: password reset and change, the dashboard's columns, e-mails with text and HTML,
and restarting a store as a job."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupRun
from provisioning import docker_client
from provisioning.models import ProvisioningJob
from provisioning.orders import store_order_paid
from provisioning.services import stores_usage_sample
from stores.models import Store, StoreUsageSample
from stores.services import store_create

pytestmark = pytest.mark.django_db


def test_password_reset_by_email_then_sign_in_with_the_new_password(client, user_factory):
    user_factory(email="forgetful@example.com", password="the old password 1")

    known = client.post(reverse("accounts:password_reset"), {"email": "forgetful@example.com"}, follow=True)
    unknown = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"}, follow=True)

    assert "Check your e-mail" in known.content.decode() and "Check your e-mail" in unknown.content.decode()
    [email] = mail.outbox  # and none for the unknown address
    assert email.to == ["forgetful@example.com"] and email.alternatives  # text and HTML
    link = re.search(r"http://testserver(/accounts/password/reset/[^\s]+/)", email.body).group(1)
    form_page = client.get(link, follow=True)
    new = {"new_password1": "a brand new passphrase 77", "new_password2": "a brand new passphrase 77"}
    done = client.post(form_page.redirect_chain[-1][0], new, follow=True)
    assert "Your new password works now" in done.content.decode()
    signed_in = client.post(
        reverse("accounts:login"), {"username": "forgetful@example.com", "password": "a brand new passphrase 77"}
    )
    assert signed_in.status_code == 302
    assert "invalid or has expired" in client.get(link, follow=True).content.decode()  # a link works once


def test_password_change_checks_the_old_one_and_the_validators(client, user_factory):
    user = user_factory(password="the current password 1")
    client.force_login(user)
    url = reverse("accounts:password_change")

    weak = client.post(url, {"old_password": "the current password 1", "new_password1": "123", "new_password2": "123"})
    wrong = client.post(
        url, {"old_password": "not it", "new_password1": "another good one 42", "new_password2": "another good one 42"}
    )
    good = client.post(
        url,
        {
            "old_password": "the current password 1",
            "new_password1": "another good one 42",
            "new_password2": "another good one 42",
        },
        follow=True,
    )

    assert "This password is too short" in weak.content.decode()
    assert "Your old password was entered incorrectly" in wrong.content.decode()
    assert "Your new password works from now on" in good.content.decode()
    user.refresh_from_db()
    assert user.check_password("another good one 42")


def test_dashboard_shows_address_plan_created_and_last_backup_with_next_steps(
    client, user_factory, woo_plan, store_in_status
):
    customer = user_factory()
    live = store_in_status("active", customer=customer, domain="live.test", site_title="Live Shop")
    BackupRun.objects.create(store=live, kind="scheduled", status="succeeded", snapshot_id="f" * 64)
    BackupRun.objects.filter(store=live).update(finished_at=live.created_at)
    store_create(customer=customer, plan=woo_plan, domain="unpaid.test")
    client.force_login(customer)

    page = client.get(reverse("accounts:home")).content.decode()

    assert '<a href="http://live.test/" rel="noopener">live.test</a>' in page
    assert "WooCommerce Commerce Core" in page and "ago" in page and "none yet" in page
    assert "Complete the payment" in page  # the unpaid store says what to do next


@pytest.mark.docker
def test_restart_runs_as_a_job_and_the_store_comes_back(
    client,
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    customer = user_factory(email="restart@example.com")
    store = store_create(customer=customer, plan=woo_plan, domain="restart.test", site_title="Restart Me")
    with django_capture_on_commit_callbacks(execute=True):
        store_order_paid(store_id=store.pk)
    mail.outbox.clear()
    run_provisioning_worker()
    [ready] = mail.outbox
    assert "restart.test is ready" in ready.subject and "Open your dashboard" in ready.alternatives[0][0]
    web = f"{Store.objects.get(pk=store.pk).slug}-web"
    started = docker_client.client().api.inspect_container(web)["State"]["StartedAt"]
    client.force_login(customer)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("stores:restart", args=[store.pk]), follow=True)
    assert "Restarting your store" in response.content.decode()
    run_provisioning_worker()

    job = store.jobs.get(kind=ProvisioningJob.Kind.RESTART)
    assert job.status == ProvisioningJob.Status.SUCCEEDED, job.error
    state = docker_client.client().api.inspect_container(web)["State"]
    assert state["Running"] and state["StartedAt"] != started
    assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE
    page = client.get(reverse("stores:detail", args=[store.pk])).content.decode()
    assert "Restart" in page and "Stop the containers" in page
    assert "No samples yet" in page

    assert stores_usage_sample() == 1
    sample = StoreUsageSample.objects.get(store=store)
    assert 0 < sample.memory_bytes < sample.memory_limit_bytes
    assert sample.memory_limit_bytes == (1024 + 512 + 256) * 1024 * 1024  # web, db and cache limits
    page = client.get(reverse("stores:detail", args=[store.pk])).content.decode()
    assert '<svg class="usage-chart"' in page and f"{sample.memory_bytes >> 20} MB" in page


def test_email_change_takes_effect_only_when_the_new_address_confirms(client, user_factory):
    user = user_factory(email="old@example.com", password="my password is long 1")
    user_factory(email="taken@example.com")
    client.force_login(user)
    url = reverse("accounts:email_change")

    wrong = client.post(url, {"new_email": "new@example.com", "password": "nope"})
    taken = client.post(url, {"new_email": "Taken@Example.com", "password": "my password is long 1"})
    assert "That is not your current password" in wrong.content.decode()
    assert "Another account already uses this address" in taken.content.decode()
    client.post(url, {"new_email": "New@Example.com", "password": "my password is long 1"})

    user.refresh_from_db()
    assert user.email == "old@example.com"  # not yet
    confirm, notice = mail.outbox
    assert confirm.to == ["new@example.com"] and notice.to == ["old@example.com"] and confirm.alternatives
    link = re.search(r"http://testserver(/accounts/email/change/confirm/[^\s]+/)", confirm.body).group(1)
    assert "You sign in with new@example.com now" in client.get(link).content.decode()
    user.refresh_from_db()
    assert user.email == "new@example.com"
    replay = client.get(link)
    assert replay.status_code == 400 and "already used" in replay.content.decode()
    assert client.get(link[:-5] + "xxxx/").status_code == 400  # a forged token


def test_two_factor_sign_in_with_an_app_code_and_single_use_recovery_codes(client, user_factory):
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = user_factory(email="careful@example.com", password="careful password 123")
    client.force_login(user)
    url = reverse("accounts:two_factor")
    client.post(url, {"action": "start"})
    setup = client.get(url).content.decode()
    assert "<svg" in setup and "Key:" in setup
    device = TOTPDevice.objects.get(user=user, confirmed=False)

    wrong = client.post(url, {"action": "confirm", "token": "000000"}, follow=True)
    assert "did not match" in wrong.content.decode()
    # django-otp throttles a device after a wrong code (1 s, then doubling): come back a little later.
    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        done = client.post(url, {"action": "confirm", "token": f"{totp(device.bin_key):06d}"}).content.decode()
    codes = re.findall(r"<li><code>([^<]+)</code></li>", done)
    assert "Two-factor sign-in is on" in done and len(codes) == 10

    client.post(reverse("accounts:logout"))
    login = {"username": "careful@example.com", "password": "careful password 123"}
    client.post(reverse("accounts:login"), login)
    gate = client.get(reverse("billing:page"))
    assert gate.status_code == 302 and gate["Location"].startswith(reverse("accounts:second_factor"))
    code_url = reverse("accounts:second_factor")
    refused = client.post(code_url, {"token": "123456", "next": "/billing/"}, follow=True)
    assert "That code is not right" in refused.content.decode()
    assert client.get(reverse("stores:detail", args=[1])).status_code == 302  # still gated

    with time_machine.travel(timezone.now() + timedelta(seconds=5)):  # past the throttle of the wrong code
        passed = client.post(code_url, {"token": codes[0], "next": "/billing/"})
        assert passed.status_code == 302 and passed["Location"] == "/billing/"
        assert client.get(reverse("billing:page")).status_code == 200

    with time_machine.travel(timezone.now() + timedelta(seconds=10)):
        client.post(reverse("accounts:logout"))
        client.post(reverse("accounts:login"), login)
        reused = client.post(code_url, {"token": codes[0]}, follow=True)
        assert "That code is not right" in reused.content.decode()  # a recovery code works once
    with time_machine.travel(timezone.now() + timedelta(seconds=80)):  # a new minute for the sign-in rate limit
        # The code page only ever sends people back into this site.
        offsite = client.post(code_url, {"token": codes[1], "next": "https://evil.example/steal"})
        assert offsite["Location"] == reverse("accounts:home")


def test_sign_in_never_redirects_off_site(client, user_factory):
    user_factory(email="plain@example.com", password="plain password 123")
    login = {"username": "plain@example.com", "password": "plain password 123"}

    offsite = client.post(reverse("accounts:login") + "?next=https://evil.example/", login)
    client.post(reverse("accounts:logout"))
    onsite = client.post(reverse("accounts:login") + "?next=/billing/", {**login, "next": "/billing/"})

    assert offsite.status_code == 302 and "evil.example" not in offsite["Location"]
    assert onsite["Location"] == "/billing/"
