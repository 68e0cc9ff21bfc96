"""A live WooCommerce store sends its mail through the platform's SMTP relay (README, "Store mail").

The relay is an SMTP sink (aiosmtpd, Debian's python3-aiosmtpd, run by the system Python) in a network namespace
this test creates, at a test address (198.51.100.25, TEST-NET-2) that the store's containers reach through
the host. WordPress's own password-reset form, posted to the store's published port, must deliver a mail there
from the store's domain to the admin, authenticated with the relay's credentials; the relay password is a
secret file of the web container, never in `docker inspect`. One store for the whole module."""

import json
import os
import time
from pathlib import Path

import pytest

from provisioning import docker_client
from provisioning.stacks.base import SECRETS_DIR, SMTP_PASSWORD_SECRET
from stores.services import store_credentials
from tests import netns
from tests.plugins.ci import require_tool
from tests.test_confinement import exec_in, provision
from tests.test_object_cache import WORDPRESS_LOAD
from tests.test_provisioning import fetch

pytestmark = [pytest.mark.django_db, pytest.mark.docker]

RELAY_ADDRESS, RELAY_PORT = "198.51.100.25", 2525
RELAY_USER, RELAY_PASSWORD = "store-relay", "relay-pw-4f1c9a7e-not-in-inspect"
SINK = Path(__file__).parent / "fixtures" / "smtp_sink.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # with Debian's python3-aiosmtpd; the venv has no aiosmtpd


@pytest.fixture
def relay(tmp_path):
    """The SMTP sink, listening at RELAY_ADDRESS:RELAY_PORT and requiring AUTH; yields a function that waits
    for the messages it received."""
    require_tool("ip")
    require_tool("nsenter")
    messages = tmp_path / "messages.jsonl"
    with netns.namespace(RELAY_ADDRESS) as namespace:
        sink = namespace.popen(
            [SYSTEM_PYTHON, str(SINK), RELAY_ADDRESS, str(RELAY_PORT), str(messages)],
            env={**os.environ, "SINK_USER": RELAY_USER, "SINK_PASSWORD": RELAY_PASSWORD},
        )
        namespace.wait_listening(RELAY_PORT, sink)

        def received(count: int, timeout: float = 15) -> list[dict]:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                lines = messages.read_text().splitlines() if messages.exists() else []
                if len(lines) >= count:
                    return [json.loads(line) for line in lines]
                time.sleep(0.2)
            raise AssertionError(f"the relay received {len(lines)} message(s), expected {count}")

        yield received


def headers(content: str) -> dict[str, str]:
    """The message's top-level headers (folded lines joined), by lower-case name."""
    head = content.replace("\r\n", "\n").split("\n\n", 1)[0]
    unfolded = head.replace("\n ", " ").replace("\n\t", " ")
    return {
        name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in unfolded.split("\n"))
    }


def test_a_live_woocommerce_store_mails_its_password_reset_through_the_relay_from_its_own_domain(
    relay,
    settings,
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    settings.STORE_SMTP_HOST, settings.STORE_SMTP_PORT = RELAY_ADDRESS, RELAY_PORT
    # In clear, since the sink has no certificate: `none` must also keep PHPMailer from trying STARTTLS.
    settings.STORE_SMTP_SECURITY = "none"
    settings.STORE_SMTP_USER, settings.STORE_SMTP_PASSWORD = RELAY_USER, RELAY_PASSWORD
    settings.STORE_MAIL_FROM = ""  # the store's own domain
    store = provision(
        customer=user_factory(email="grace@example.com"),
        plan=woo_plan,
        domain="www.mail1.test",
        title="Grace's Shop",
        capture=django_capture_on_commit_callbacks,
        run_worker=run_provisioning_worker,
    )
    creds = store_credentials(store)

    # WordPress's own lost-password form, through the store's published port, as a visitor would post it.
    response = fetch(
        store.port, store.domain, "/wp-login.php?action=lostpassword", data={"user_login": creds["admin_user"]}
    )
    assert response.status == 302, response.text[:2000]
    assert "checkemail=confirm" in response.getheader("Location")

    [reset] = relay(1)
    assert reset["auth_login"] == RELAY_USER  # the relay's credentials (the sink refuses mail without them)
    assert reset["mail_from"] == "store@mail1.test"  # envelope: the store's domain, without www.
    assert reset["rcpt_tos"] == [creds["admin_email"]] == ["grace@example.com"]
    message = headers(reset["content"])
    assert message["from"] == "Grace's Shop <store@mail1.test>"  # the store's title, not "WordPress"
    assert message["to"] == "grace@example.com"
    assert "Password Reset" in message["subject"]
    assert "action=rp" in reset["content"]  # the reset link

    # A plugin's own From (WooCommerce sends from the admin's address by default): an address of the store's
    # domain leaves as it is; any other becomes the store's (the relay signs only for aligned domains), and
    # the given address stays reachable as Reply-To.
    code = WORDPRESS_LOAD + (
        "wp_mail('buyer@example.com', 'Order 1', 'Thanks', ['From: Orders <orders@mail1.test>']);"
        " wp_mail('buyer@example.com', 'Order 2', 'Thanks', ['From: Grace <grace@gmail.example>']);"
    )
    status, output = docker_client.container_exec(name=f"{store.slug}-web", command=["php", "-r", code])
    assert status == 0, output
    _, aligned, foreign = relay(3)
    assert aligned["mail_from"] == "orders@mail1.test"
    assert headers(aligned["content"])["from"] == "Orders <orders@mail1.test>"
    assert "reply-to" not in headers(aligned["content"])
    assert foreign["mail_from"] == "store@mail1.test"
    assert headers(foreign["content"])["from"] == "Grace <store@mail1.test>"
    assert headers(foreign["content"])["reply-to"] == "grace@gmail.example"

    # The platform's mu-plugins load from the image (WPMU_PLUGIN_DIR); the store's own wp-content/mu-plugins
    # still load, with their own URLs.
    web = f"{store.slug}-web"
    own = "<?php define('STORE_OWN_MU_PLUGIN', plugins_url('app.js', __FILE__));"
    status, output = exec_in(
        web,
        f'mkdir -p /var/www/html/wp-content/mu-plugins && echo "{own}" > /var/www/html/wp-content/mu-plugins/own.php',
    )
    assert status == 0, output
    code = (
        WORDPRESS_LOAD
        + "echo json_encode([WPMU_PLUGIN_DIR, STORE_OWN_MU_PLUGIN, array_map('basename', wp_get_mu_plugins())]);"
    )
    status, output = docker_client.container_exec(name=web, command=["php", "-r", code])
    assert status == 0, output
    assert json.loads(output.splitlines()[-1]) == [
        "/usr/local/share/shophosting/mu-plugins",
        "http://www.mail1.test/wp-content/mu-plugins/app.js",
        ["shophosting-mail.php", "shophosting-store-mu-plugins.php"],
    ]

    # The relay password is a 0440 secret file of the web container, and nowhere in its configuration.
    attrs = docker_client.client().containers.get(web).attrs
    assert RELAY_PASSWORD not in json.dumps(attrs)
    environment = dict(variable.split("=", 1) for variable in attrs["Config"]["Env"])
    assert environment["SHOPHOSTING_SMTP_PASSWORD_FILE"] == f"{SECRETS_DIR}/{SMTP_PASSWORD_SECRET}"
    assert environment["SHOPHOSTING_SMTP_USER"] == RELAY_USER
    assert exec_in(web, f"stat -c '%a %u %g' {SECRETS_DIR}/{SMTP_PASSWORD_SECRET}")[1].split() == ["440", "0", "33"]
    assert exec_in(web, f"cat {SECRETS_DIR}/{SMTP_PASSWORD_SECRET}")[1] == RELAY_PASSWORD
    # Only the web container, which sends, has it.
    for role in ("db", "cache"):
        assert RELAY_PASSWORD not in json.dumps(docker_client.client().containers.get(f"{store.slug}-{role}").attrs)
