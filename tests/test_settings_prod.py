"""Production settings refuse to start without real secrets, and name what is missing."""

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from tests.conftest import ROOT

VALID = {
    "DJANGO_SETTINGS_MODULE": "shophosting.settings.prod",
    "DJANGO_SECRET_KEY": "prod-test-key-9c1f0e7a4b2d8e6f3a5c7b9d1e2f4a6c8e0b2d4f",
    "DATABASE_URL": "mysql://shop:pw@127.0.0.1:3306/shophosting",
    "REDIS_URL": "redis://127.0.0.1:6379/13",
    "CREDENTIALS_KEY": Fernet.generate_key().decode(),
    "PLATFORM_DOMAIN": "shophosting.example",
}

PROBE = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY, "
    "settings.SESSION_COOKIE_SAMESITE, settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
    "settings.DEBUG)"
)


def start(env_overrides: dict[str, str | None], probe: str = PROBE) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in VALID}
    env.update({k: v for k, v in {**VALID, **env_overrides}.items() if v is not None})
    return subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_production_starts_with_every_required_variable():
    result = start({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "Lax", "31536000", "True", "False"]


@pytest.mark.parametrize(
    "variable", ["DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CREDENTIALS_KEY", "PLATFORM_DOMAIN"]
)
@pytest.mark.parametrize("value", [None, "", "change-me"], ids=["missing", "empty", "placeholder"])
def test_production_refuses_to_start_without(variable, value):
    result = start({variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr.splitlines()[-1]


def test_production_refuses_a_database_url_that_is_not_mysql():
    result = start({"DATABASE_URL": "sqlite:////tmp/prod.sqlite3"})
    assert result.returncode != 0
    assert "DATABASE_URL must be a MySQL/MariaDB URL" in result.stderr


@pytest.mark.parametrize("value", ["https://shophosting.example/", "shophosting", "shop hosting.example"])
def test_production_refuses_a_platform_domain_that_is_not_a_domain_name(value):
    result = start({"PLATFORM_DOMAIN": value})
    assert result.returncode != 0
    assert "PLATFORM_DOMAIN must be a domain name" in result.stderr.splitlines()[-1]


def test_production_uses_the_platform_domain_it_is_given():
    probe = "import django; django.setup(); from django.conf import settings; print(settings.PLATFORM_DOMAIN)"
    result = start({"PLATFORM_DOMAIN": "Platform.Example"}, probe=probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "platform.example"


def test_the_env_example_platform_domain_is_a_placeholder_production_refuses():
    import re

    example = (ROOT / ".env.example").read_text()
    value = re.search(r"^PLATFORM_DOMAIN=(.*)$", example, re.M)[1]
    result = start({"PLATFORM_DOMAIN": value})
    assert result.returncode != 0 and "PLATFORM_DOMAIN" in result.stderr.splitlines()[-1]


def test_env_example_lists_every_variable_the_settings_read():
    import re

    read = set()
    for source in (ROOT / "shophosting" / "settings").glob("*.py"):
        read |= set(re.findall(r'(?:env(?:\.\w+)?|required|os\.environ\.setdefault)\("([A-Z_]+)"', source.read_text()))
    example = (ROOT / ".env.example").read_text().splitlines()
    documented = {line.split("=", 1)[0] for line in example if re.match(r"^[A-Z_]+=", line)}
    assert read - documented == set()
    # Each variable has a comment line right above it (or above its group).
    for index, line in enumerate(example):
        if re.match(r"^[A-Z_]+=", line):
            above = [prev for prev in example[:index] if prev.strip()]
            assert above and (above[-1].startswith("#") or re.match(r"^[A-Z_]+=", above[-1])), line
