"""Public forms and error pages: bad input gets a clear message and loses nothing."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from consultations.models import ConsultationRequest, ContactMessage

pytestmark = pytest.mark.django_db


def test_contact_form_saves_the_message_and_tells_support(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/contact/", {"name": "Ada", "email": "ada@example.com", "subject": "Pricing", "message": "Hi"}, follow=True
        )
    assert "your message reached us" in response.content.decode()
    assert ContactMessage.objects.get().subject == "Pricing"
    assert mail.outbox[0].subject == "[contact] Pricing"


def test_contact_form_with_a_bad_email_keeps_what_was_typed(client):
    response = client.post("/contact/", {"name": "Ada", "email": "not-an-email", "subject": "S", "message": "Keep me"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Enter a valid email address." in body
    assert "Keep me" in body
    assert ContactMessage.objects.count() == 0


def test_consultation_in_the_past_is_refused_with_a_reason(client):
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        "/consultation/", {"name": "Ada", "email": "a@example.com", "platform": "magento", "preferred_time": past}
    )
    assert response.status_code == 200
    assert "Please pick a time in the future." in response.content.decode()
    assert ConsultationRequest.objects.count() == 0


def test_consultation_request_is_saved(client):
    future = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        "/consultation/",
        {
            "name": "Ada",
            "email": "a@example.com",
            "platform": "woocommerce",
            "preferred_time": future,
            "message": "Migrating",
        },
    )
    assert response.status_code == 302
    assert ConsultationRequest.objects.get().status == ConsultationRequest.Status.REQUESTED


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_base_template_shows_staff_links_only_to_staff(client, staff_user, user_factory):
    client.force_login(user_factory())
    assert "Staff admin" not in client.get("/contact/").content.decode()
    client.force_login(staff_user)
    assert "Staff admin" in client.get("/contact/").content.decode()
