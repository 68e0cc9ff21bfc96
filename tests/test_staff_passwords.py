"""Staff temporary passwords: e-mailed (or shown once when mail fails), and every admin page is closed until
the staff member changes it."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import AuditEvent, User
from accounts.roles import Role
from accounts.services import staff_user_ensure

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:accounts_staffuser_changelist")


def reset(client, user):
    return client.post(CHANGELIST, {"action": "reset_staff_password", "_selected_action": [user.pk]}, follow=True)


def test_a_temporary_password_closes_every_admin_page_until_it_is_changed(client, staff_user):
    colleague, _ = staff_user_ensure(email="colleague@example.com", role=Role.ADMIN, password="old staff pass 1")
    client.force_login(staff_user)

    page = reset(client, colleague).content.decode()

    assert "was e-mailed a temporary password" in page
    [email] = mail.outbox
    temporary = email.body.split("new one right away:\n\n")[1].split("\n")[0]
    assert email.to == ["colleague@example.com"] and len(temporary) == 16
    colleague.refresh_from_db()
    assert colleague.must_change_password and colleague.check_password(temporary)
    assert AuditEvent.objects.get(event="staff_password_reset").detail["delivered"] is True

    client.force_login(colleague)
    for url in ("/admin/", CHANGELIST, "/admin/stores/store/", "/admin/billing/plan/", "/django-rq/", "/cms-admin/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == reverse("admin:password_change"), url
    change = {"old_password": temporary, "new_password1": "my own new pass 42", "new_password2": "my own new pass 42"}
    client.post(reverse("admin:password_change"), change)
    colleague.refresh_from_db()
    assert not colleague.must_change_password
    assert client.get("/admin/").status_code == 200


def test_when_the_mail_fails_the_password_is_shown_once_and_audited(client, staff_user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1  # nothing listens there
    colleague, _ = staff_user_ensure(email="unlucky@example.com", role=Role.SUPPORT, password="old staff pass 1")
    client.force_login(staff_user)

    page = reset(client, colleague).content.decode()

    assert "The e-mail to unlucky@example.com failed" in page
    temporary = page.split("it is not shown again: ")[1][:16]
    assert User.objects.get(pk=colleague.pk).check_password(temporary)
    assert AuditEvent.objects.get(event="staff_password_reset").detail["delivered"] is False


def test_only_super_admins_reset_and_never_their_own(client, staff_user):
    admin_user, _ = staff_user_ensure(email="admin@example.com", role=Role.ADMIN, password="admin pass 123")
    client.force_login(staff_user)
    own = reset(client, staff_user).content.decode()
    assert "Change your own password" in own
    client.force_login(admin_user)
    refused = client.post(CHANGELIST, {"action": "reset_staff_password", "_selected_action": [staff_user.pk]})
    assert refused.status_code in (200, 403)
    assert not User.objects.get(pk=staff_user.pk).must_change_password
