"""Operator commands: create_admin and check_health."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent, User

pytestmark = pytest.mark.django_db


def test_create_admin_generates_a_password_once_and_puts_the_user_in_the_role(client):
    out = io.StringIO()
    call_command("create_admin", "ops@example.com", "--name", "Grace Hopper", "--role", "support", stdout=out)

    password = out.getvalue().split("password (shown once): ")[1].strip()
    user = User.objects.get(email="ops@example.com")
    assert user.is_staff and not user.is_superuser and user.first_name == "Grace" and user.last_name == "Hopper"
    assert list(user.groups.values_list("name", flat=True)) == ["support"]
    assert user.check_password(password) and len(password) >= 16
    assert AuditEvent.objects.filter(event="staff_user_created").exists()
    with pytest.raises(CommandError, match="not an e-mail address"):
        call_command("create_admin", "not-an-email", stdout=io.StringIO())
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("create_admin", "x@example.com", "--role", "overlord", stdout=io.StringIO())


def test_check_health_exits_non_zero_when_a_dependency_is_down(settings, docker_engine):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("check_health", "--json", stdout=out)
    assert exit_.value.code == 1
    report = json.loads(out.getvalue())
    assert report["healthy"] is False and report["checks"]["redis"]["ok"] is False
    assert report["checks"]["database"]["ok"] is True
