"""Input that must be one word or one line: validators anchored to the whole value (a `$` also matches before
a trailing line break), the nginx vhost renderer, and installers that never read a customer's value as an
option or put a password on a command line."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from backups import restic
from provisioning import proxy
from provisioning.exceptions import ProvisioningError
from shophosting.core.validators import header_safe, single_line
from stores.domains import LABEL, domain_normalize
from stores.models import Host, Store
from stores.services import store_create

LINE_BREAKS = ["x\n", "a\nb", "a\rb", "a\r\nb", "\nx", "a\x0bb", "a\x85b", "a\u2028b"]
HIJACK = "victim.example\n.x.example"


@pytest.mark.parametrize("value", LINE_BREAKS)
def test_each_pattern_validator_refuses_line_breaks(value):
    assert LABEL.fullmatch(value) is None
    with pytest.raises(ValidationError):
        single_line(value)
    assert "\n" not in header_safe(value) and "\r" not in header_safe(value)


@pytest.mark.parametrize("snapshot_id", ["0123abcd\n", "0123abcd\r\n", "0123\nabcd", "\n0123abcd", "0123abcd\nffff"])
def test_a_snapshot_id_with_a_line_break_is_refused(snapshot_id):
    # As every caller uses it (restic.py, backups/services.py): .match, so the pattern itself must anchor.
    assert restic.SNAPSHOT_ID.match(snapshot_id) is None


def test_the_patterns_still_take_what_they_should():
    assert LABEL.fullmatch("shop-1") and restic.SNAPSHOT_ID.match("0123abcd")
    single_line("Pricing\tquestion: “Magento” — 2 stores")  # a tab and typography are fine in a subject


@pytest.mark.parametrize(
    "typed", [HIJACK, "victim.example\n", "shop.exa\nmple.com", "shop\r.example.com", "shop.example.com\t.evil.com"]
)
def test_a_domain_with_a_line_break_or_whitespace_inside_is_refused(typed):
    if typed.endswith("\n"):
        # Around the value, whitespace is only what a form strips anyway: the name itself is clean.
        assert domain_normalize(typed) == typed.strip()
        return
    with pytest.raises(ValidationError) as error:
        domain_normalize(typed)
    assert "cannot contain line breaks, tabs or other control characters" in " ".join(error.value.messages)


@pytest.mark.django_db
def test_the_domain_service_refuses_a_hijacking_name_and_creates_nothing(user_factory, woo_plan):
    store_create(customer=user_factory(), plan=woo_plan, domain="victim.example")
    with pytest.raises(ValidationError):
        store_create(customer=user_factory(), plan=woo_plan, domain=HIJACK)
    assert list(Store.objects.values_list("domain", flat=True)) == ["victim.example"]


@pytest.mark.django_db
def test_the_signup_form_refuses_a_hijacking_domain_with_a_clear_error_and_keeps_the_rest(
    client, user_factory, priced_plan
):
    from accounts.models import User

    store_create(customer=user_factory(), plan=priced_plan, domain="victim.example")
    users = User.objects.count()
    response = client.post(
        reverse("billing:signup", args=[priced_plan.slug]),
        {
            "email": "mallory@example.com",
            "password": "a long pass phrase 42",
            "company": "Mallory Ltd",
            "domain": HIJACK,
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "A domain cannot contain line breaks, tabs or other control characters." in page
    assert 'value="mallory@example.com"' in page and 'value="Mallory Ltd"' in page
    assert Store.objects.count() == 1 and User.objects.count() == users


def vhost(**overrides):
    values = {
        "store_id": 1,
        "domain": "shop.test",
        "upstream": "127.0.0.1:20001",
        "mode": "proxy",
        "firewall": False,
        "listen_http": "80",
        "listen_https": "443",
        "acme_webroot": "/srv/acme",
        "tls_cert": None,
        "tls_key": None,
    }
    return proxy.vhost_render(**{**values, **overrides})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("domain", HIJACK),
        ("domain", "victim.example\n"),
        ("domain", "a.test;include /etc/passwd"),
        ("domain", "a.test{"),
        ("upstream", "127.0.0.1:1\nserver_name victim.example"),
        ("acme_webroot", "/srv/acme /etc"),
        ("tls_cert", "/tls/a.pem\x00"),
    ],
)
def test_the_vhost_renderer_refuses_whitespace_control_characters_and_nginx_syntax(field, value):
    with pytest.raises(ProvisioningError) as error:
        vhost(**{field: value, **({"tls_key": "/tls/k.pem"} if field == "tls_cert" else {})})
    assert f"refusing to write an nginx vhost: the {field}" in str(error.value)
    assert "server_name shop.test;" in vhost()


def test_a_refused_vhost_writes_nothing(settings, tmp_path):
    settings.NGINX_SITES_DIR = str(tmp_path / "sites")
    settings.NGINX_ACME_WEBROOT = str(tmp_path / "acme")
    with pytest.raises(ProvisioningError):
        proxy.vhost_write(store_id=1, domain=HIJACK, upstream="127.0.0.1:20001", firewall=True)
    with pytest.raises(ProvisioningError):
        proxy.vhost_remove(domain="../../etc/nginx/nginx")
    assert list(tmp_path.iterdir()) == []


def test_a_request_id_with_a_line_break_is_replaced_not_echoed(client):
    for offered in ("0123456789abcdef\n", "0123456789abcdef\nSet-Cookie: x=1", "01234567\r\n89abcdef"):
        response = client.get("/readyz", HTTP_X_REQUEST_ID=offered)
        assert response.status_code == 200
        assert response["X-Request-ID"] != offered.strip() and len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_an_engine_url_with_a_line_break_is_refused():
    host = Host(name="second", docker_url="unix:///var/run/docker.sock\nx", memory_capacity_mb=1024, cpu_capacity=1)
    with pytest.raises(ValidationError) as error:
        host.full_clean()
    assert "docker_url" in error.value.message_dict
    host.docker_url = "unix:///var/run/docker.sock"
    host.full_clean()


# --- installers: no password on a command line, no customer value read as an option ---------------------


@pytest.mark.django_db
@pytest.mark.parametrize("title", ["--help", "--admin-password=x", "-q \"quoted\" 'title'"])
def test_installer_command_lines_carry_no_password_and_no_option_a_customer_chose(user_factory, title):
    from billing.models import Plan
    from billing.services.plans import plan_catalogue_seed
    from provisioning.stacks import stack_for

    plan_catalogue_seed()
    customer = user_factory(first_name="--admin-user=root", last_name="-q")
    creds = {
        "db_password": "db-secret-1",
        "db_root_password": "root-secret-2",
        "admin_password": "admin-secret-3",
        "admin_email": "owner@example.com",
        "admin_user": "owner",
    }
    for platform in ("magento", "woocommerce"):
        plan = Plan.objects.get(slug=f"{platform}-commerce-core")
        store = store_create(customer=customer, plan=plan, domain=f"{platform}.test", site_title=title)
        commands = stack_for(store).install_commands(creds)
        for argv, _environment in commands:
            line = " ".join(argv)
            assert not any(secret in line for secret in ("db-secret-1", "root-secret-2", "admin-secret-3")), line
            # Before a `--` separator every token is read as a possible option: none may be a customer's value.
            options = argv[: argv.index("--")] if "--" in argv else argv
            assert not {title, "--admin-user=root", "-q"} & set(options), argv
        environments = " ".join(str(environment) for _argv, environment in commands)
        assert "admin-secret-3" in environments  # the password still reaches the installer


def test_the_magento_standin_reads_argv_as_symfony_console_does():
    """The stand-in's parser is what the Magento test relies on: without `--`, `--help` shows help and sets
    nothing, and `--admin-password=x` is an unknown option."""
    import importlib.util

    from django.conf import settings

    path = settings.BASE_DIR / "deploy" / "images" / "magento-standin-web" / "standin.py"
    spec = importlib.util.spec_from_file_location("magento_standin", path)
    standin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standin)
    parse = standin.console_parse
    assert parse(["general/store_information/name", "--help"]) == ({"help": ""}, ["general/store_information/name"])
    assert parse(["--", "general/store_information/name", "--admin-password=x"]) == (
        {},
        ["general/store_information/name", "--admin-password=x"],
    )
    assert parse(["--admin-firstname=--x"]) == ({"admin-firstname": "--x"}, [])
