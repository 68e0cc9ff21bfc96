"""The stores' SMTP relay settings (shophosting/core/mail_relay.py) are checked at start-up with the variable's
name, and the stacks hand each store's web container the relay, its From address and the password as a
secret file (README, "Store mail"). No Docker: tests/test_store_mail.py sends through a live store."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from provisioning.stacks.base import SECRETS_DIR
from provisioning.stacks.magento import MagentoStack
from provisioning.stacks.woocommerce import WooCommerceStack
from shophosting.core.mail_relay import store_smtp_settings
from stores.services import store_create
from tests.conftest import ROOT

RELAY = {"STORE_SMTP_HOST": "relay.example.net", "STORE_SMTP_USER": "shops", "STORE_SMTP_PASSWORD": " pw with spaces "}


def test_relay_settings_have_defaults_by_security():
    assert store_smtp_settings({}) == {
        "STORE_SMTP_HOST": "",
        "STORE_SMTP_PORT": 587,
        "STORE_SMTP_SECURITY": "starttls",
        "STORE_SMTP_USER": "",
        "STORE_SMTP_PASSWORD": "",
        "STORE_MAIL_FROM": "",
    }
    assert store_smtp_settings({**RELAY, "STORE_SMTP_SECURITY": "tls"})["STORE_SMTP_PORT"] == 465
    assert store_smtp_settings({**RELAY, "STORE_SMTP_SECURITY": "NONE"})["STORE_SMTP_PORT"] == 25
    relay = store_smtp_settings({**RELAY, "STORE_SMTP_PORT": "2525", "STORE_MAIL_FROM": "Mail@Shops.example"})
    assert relay["STORE_SMTP_PORT"] == 2525 and relay["STORE_MAIL_FROM"] == "Mail@Shops.example"
    assert relay["STORE_SMTP_PASSWORD"] == " pw with spaces "  # whole: spaces may be part of a password
    assert store_smtp_settings({"STORE_SMTP_HOST": "10.0.0.25"})["STORE_SMTP_HOST"] == "10.0.0.25"
    # .env.example's own values: no relay yet, and a security that is its default.
    assert store_smtp_settings({"STORE_SMTP_HOST": "", "STORE_SMTP_SECURITY": "starttls"})["STORE_SMTP_HOST"] == ""


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"STORE_SMTP_SECURITY": "ssl"}, "STORE_SMTP_SECURITY must be one of none, starttls, tls (got 'ssl')"),
        ({"STORE_SMTP_PORT": "smtp"}, "STORE_SMTP_PORT must be a port number from 1 to 65535 (got 'smtp')"),
        ({"STORE_SMTP_PORT": "70000"}, "STORE_SMTP_PORT must be a port number"),
        ({"STORE_SMTP_PORT": "-1"}, "STORE_SMTP_PORT must be a port number"),
        ({"STORE_SMTP_HOST": "relay example"}, "STORE_SMTP_HOST must be a host name or an IP address"),
        ({"STORE_SMTP_HOST": "smtp://relay.example"}, "STORE_SMTP_HOST must be a host name"),
        ({"STORE_SMTP_HOST": "", "STORE_SMTP_USER": "u", "STORE_SMTP_PASSWORD": "p"}, "but STORE_SMTP_HOST is empty"),
        ({"STORE_SMTP_HOST": "", "STORE_MAIL_FROM": "a@b.example"}, "STORE_MAIL_FROM set but STORE_SMTP_HOST is empty"),
        ({"STORE_SMTP_PASSWORD": ""}, "STORE_SMTP_USER and STORE_SMTP_PASSWORD go together"),
        ({"STORE_SMTP_USER": ""}, "STORE_SMTP_USER and STORE_SMTP_PASSWORD go together"),
        ({"STORE_SMTP_PASSWORD": "p\r\nRCPT TO:<x@y>"}, "STORE_SMTP_PASSWORD must be one line"),
        ({"STORE_MAIL_FROM": "Shops <mail@shops.example>"}, "STORE_MAIL_FROM must be one e-mail address"),
        ({"STORE_MAIL_FROM": "mail@localhost"}, "STORE_MAIL_FROM must be one e-mail address"),
    ],
)
def test_a_relay_setting_the_stores_could_not_use_stops_start_up_naming_it(values, message):
    with pytest.raises(ImproperlyConfigured) as error:
        store_smtp_settings({**RELAY, **values})
    assert message in str(error.value)


def test_the_platform_refuses_to_start_with_a_bad_relay_setting():
    """The check runs when the settings load, before anything else: the process stops with the reason."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shophosting.settings.test", "STORE_SMTP_HOST": "relay.example"}
    probe = "import django; django.setup(); from django.conf import settings; print(settings.STORE_SMTP_PORT)"
    started = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.split() == ["587"]
    env["STORE_SMTP_PORT"] = "twenty-five"
    refused = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert (
        "ImproperlyConfigured: STORE_SMTP_PORT must be a port number from 1 to 65535 (got 'twenty-five')"
        in refused.stderr
    )


def _relay(settings, **overrides):
    values = {
        "STORE_SMTP_HOST": "relay.example.net",
        "STORE_SMTP_PORT": 587,
        "STORE_SMTP_SECURITY": "starttls",
        "STORE_SMTP_USER": "shops",
        "STORE_SMTP_PASSWORD": "relay-secret-1",
        "STORE_MAIL_FROM": "",
        **overrides,
    }
    for name, value in values.items():
        setattr(settings, name, value)


def _services(stack) -> dict:
    return {service.role: service for service in stack.services(credentials={"db_password": "db-pw"})}


@pytest.mark.django_db
def test_a_woocommerce_store_gets_the_relay_in_its_environment_and_the_password_as_a_file(
    settings, user_factory, woo_plan
):
    _relay(settings)
    store = store_create(customer=user_factory(), plan=woo_plan, domain="www.Shop-Mail.example")
    services = _services(WooCommerceStack(store))
    web = services["web"]
    assert {name: value for name, value in web.environment.items() if name.startswith("SHOPHOSTING_")} == {
        "SHOPHOSTING_SMTP_HOST": "relay.example.net",
        "SHOPHOSTING_SMTP_PORT": "587",
        "SHOPHOSTING_SMTP_SECURITY": "starttls",
        "SHOPHOSTING_SMTP_USER": "shops",
        "SHOPHOSTING_SMTP_PASSWORD_FILE": f"{SECRETS_DIR}/smtp_password",
        "SHOPHOSTING_MAIL_FROM": "store@shop-mail.example",  # the store's domain, without www.
    }
    assert web.secrets == {"db_password": "db-pw", "smtp_password": "relay-secret-1"}
    assert "relay-secret-1" not in repr(web.environment)
    assert all("smtp_password" not in service.secrets for role, service in services.items() if role != "web")

    # One configured sender for every store.
    _relay(settings, STORE_MAIL_FROM="mail@shophosting.example")
    assert _services(WooCommerceStack(store))["web"].environment["SHOPHOSTING_MAIL_FROM"] == "mail@shophosting.example"
    # A relay without credentials: no user, no password file.
    _relay(settings, STORE_SMTP_USER="", STORE_SMTP_PASSWORD="", STORE_SMTP_SECURITY="none", STORE_SMTP_PORT=25)
    web = _services(WooCommerceStack(store))["web"]
    assert "SHOPHOSTING_SMTP_USER" not in web.environment and "SHOPHOSTING_SMTP_PASSWORD_FILE" not in web.environment
    assert web.secrets == {"db_password": "db-pw"}
    # No relay: the mailer mu-plugin has nothing to read and does nothing.
    _relay(settings, STORE_SMTP_HOST="")
    web = _services(WooCommerceStack(store))["web"]
    assert not [name for name in web.environment if name.startswith("SHOPHOSTING_")]
    assert web.secrets == {"db_password": "db-pw"}


@pytest.mark.django_db
def test_magento_stack_hands_the_stand_in_web_container_magentos_own_smtp_config_and_the_password_as_a_file(
    settings,
    user_factory,
    woo_plan,  # seeds the whole plan catalogue
):
    """What the stack hands the Magento web container (the local image is a stand-in: Magento is obtainable
    nowhere here): Magento 2.4.7's system/smtp/* and sender paths as its CONFIG__DEFAULT__ variables, the
    password as a secret file that `shophosting-magento-install smtp-password` puts into env.php."""
    from billing.models import Plan

    _relay(settings, STORE_SMTP_SECURITY="tls", STORE_SMTP_PORT=465)
    store = store_create(
        customer=user_factory(), plan=Plan.objects.get(slug="magento-commerce-core"), domain="magento-mail.example"
    )
    stack = MagentoStack(store)
    web = _services(stack)["web"]
    config = {name: value for name, value in web.environment.items() if name.startswith("CONFIG__DEFAULT__")}
    assert config == {
        "CONFIG__DEFAULT__SYSTEM__SMTP__DISABLE": "0",
        "CONFIG__DEFAULT__SYSTEM__SMTP__TRANSPORT": "smtp",
        "CONFIG__DEFAULT__SYSTEM__SMTP__HOST": "relay.example.net",
        "CONFIG__DEFAULT__SYSTEM__SMTP__PORT": "465",
        "CONFIG__DEFAULT__SYSTEM__SMTP__SSL": "ssl",  # Magento's name for TLS from the first byte
        "CONFIG__DEFAULT__SYSTEM__SMTP__AUTH": "login",
        "CONFIG__DEFAULT__SYSTEM__SMTP__USERNAME": "shops",
        "CONFIG__DEFAULT__SYSTEM__SMTP__SET_RETURN_PATH": "1",
        **{
            f"CONFIG__DEFAULT__TRANS_EMAIL__IDENT_{identity}__EMAIL": "store@magento-mail.example"
            for identity in ("GENERAL", "SALES", "SUPPORT", "CUSTOM1", "CUSTOM2")
        },
    }
    assert web.environment["MAGENTO_SMTP_PASSWORD_FILE"] == f"{SECRETS_DIR}/smtp_password"
    assert web.secrets["smtp_password"] == "relay-secret-1"
    assert "relay-secret-1" not in repr(web.environment)
    creds = {"admin_user": "a", "admin_email": "a@example.com", "admin_password": "p"}
    commands = stack.install_commands(creds)
    assert commands[-1] == (["shophosting-magento-install", "smtp-password"], {})
    assert "relay-secret-1" not in repr(commands)

    _relay(settings, STORE_SMTP_SECURITY="starttls")
    assert _services(MagentoStack(store))["web"].environment["CONFIG__DEFAULT__SYSTEM__SMTP__SSL"] == "tls"  # STARTTLS
    _relay(settings, STORE_SMTP_HOST="")
    web = _services(MagentoStack(store))["web"]
    assert not [name for name in web.environment if name.startswith("CONFIG__") or "SMTP" in name]
    assert "smtp_password" not in web.secrets
    assert all("smtp-password" not in command for command, _ in MagentoStack(store).install_commands(creds))
