import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from accounts.models import AuditEvent, User
from accounts.roles import ROLE_PERMISSIONS, Role

pytestmark = pytest.mark.django_db


def test_email_is_the_login_and_is_case_insensitive(client, user_factory):
    user_factory(email="Merchant@Example.com")
    assert User.objects.get().email == "merchant@example.com"
    response = client.post(
        "/accounts/login/", {"username": "MERCHANT@example.com", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/"
    assert "merchant@example.com" in client.get("/accounts/").content.decode()


def test_wrong_password_shows_a_clear_error(client, user_factory):
    user_factory(email="m@example.com")
    response = client.post("/accounts/login/", {"username": "m@example.com", "password": "nope nope"})
    assert response.status_code == 200
    assert "Please enter a correct e-mail address and password" in response.content.decode()


def test_account_pages_need_a_login(client):
    response = client.get("/accounts/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_staff_roles_exist_as_groups_with_permissions():
    assert set(Group.objects.values_list("name", flat=True)) >= {"super_admin", "admin", "support"}
    super_admin = Group.objects.get(name="super_admin")
    assert super_admin.permissions.count() == Permission.objects.count()
    support = set(Group.objects.get(name="support").permissions.values_list("codename", flat=True))
    assert support == {name.split(".")[1] for name in ROLE_PERMISSIONS[Role.SUPPORT]}
    assert "change_user" not in support


def test_audit_trail_is_read_only_in_the_admin(client, staff_user):
    AuditEvent.objects.create(event="login_failed", actor_email="x@example.com")
    client.force_login(staff_user)
    assert client.get("/admin/accounts/auditevent/").status_code == 200
    assert client.get("/admin/accounts/auditevent/add/").status_code == 403
    event = AuditEvent.objects.get(event="login_failed")
    response = client.post(f"/admin/accounts/auditevent/{event.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_demo_seed_loads_plans_pages_and_a_staff_user_idempotently(client, capsys):
    call_command("demo_seed", staff_email="demo@example.com")
    first = capsys.readouterr().out
    call_command("demo_seed", staff_email="demo@example.com")
    second = capsys.readouterr().out
    password = second.split("password: ")[1].strip()
    from billing.models import Plan

    assert Plan.objects.count() == 12
    staff = User.objects.get(email="demo@example.com")
    assert staff.is_staff and staff.is_superuser and staff.groups.filter(name="super_admin").exists()
    assert staff.check_password(password)
    assert "plans: 12" in first
    home = client.get("/")
    assert home.status_code == 200
    assert "Commerce Core" in home.content.decode() and "Agency Plus" in home.content.decode()


def test_demo_seed_dry_run_writes_nothing(capsys):
    call_command("demo_seed", dry_run=True)
    assert "would load" in capsys.readouterr().out
    assert not User.objects.exists()
