"""The Magento stack's mail wiring on the real engine, with the Magento STAND-IN (Magento is obtainable nowhere
here, so no mail is sent): the web container gets Magento's own system/smtp/* configuration variables, the
installer puts the relay password from its secret file into env.php (the stand-in's record of it), and the
password is nowhere in `docker inspect`. One store for the module."""

import json

import pytest

from provisioning import docker_client
from stores.services import store_credentials
from tests.test_confinement import exec_in, provision
from tests.test_provisioning import fetch

pytestmark = [pytest.mark.django_db, pytest.mark.docker]

RELAY_PASSWORD = "magento-relay-pw-7d2e-not-in-inspect"


def test_the_magento_stand_in_gets_the_relay_as_magento_config_and_the_password_only_through_its_installer(
    settings,
    user_factory,
    woo_plan,  # seeds the whole plan catalogue
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    from billing.models import Plan

    settings.STORE_SMTP_HOST, settings.STORE_SMTP_PORT, settings.STORE_SMTP_SECURITY = (
        "relay.example.net",
        587,
        "starttls",
    )
    settings.STORE_SMTP_USER, settings.STORE_SMTP_PASSWORD = "shops", RELAY_PASSWORD
    settings.STORE_MAIL_FROM = ""
    store = provision(
        customer=user_factory(),
        plan=Plan.objects.get(slug="magento-commerce-core"),
        domain="magento-mail.test",
        title="Mail Magento",
        capture=django_capture_on_commit_callbacks,
        run_worker=run_provisioning_worker,
    )
    assert store_credentials(store)  # provisioned

    # What the stand-in reports Magento would use: system/smtp/* from the container's CONFIG__ variables, the
    # password from env.php, where the installer's smtp-password step put it (through Varnish, uncached).
    page = fetch(store.port, store.domain)
    assert page.status == 200
    assert (
        "mail: smtp relay.example.net:587 ssl=tls auth=login user=shops password=set from=store@magento-mail.test"
        in page.text
    )
    web = f"{store.slug}-web"
    code, state = exec_in(web, "cat /var/www/html/app/etc/env/standin-install.json")
    assert code == 0, state
    assert json.loads(state)["env"]["system"] == {"smtp/password": RELAY_PASSWORD}
    # Never in the container's configuration, nor in Varnish's or the database's.
    for role in ("web", "varnish", "db", "cache", "search"):
        assert RELAY_PASSWORD not in json.dumps(docker_client.client().containers.get(f"{store.slug}-{role}").attrs)
