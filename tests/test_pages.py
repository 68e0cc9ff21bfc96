"""Public forms and error pages: bad input gets a clear message and loses nothing."""

import datetime
import zoneinfo

import pytest
from django.core import mail

from consultations.models import ConsultationRequest, ContactMessage
from tests.consultation_slots import business_slot

# /contact/ is the CMS contact page.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("site_pages")]


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


def test_a_line_break_in_the_contact_subject_is_refused_before_anything_is_saved(
    client, django_capture_on_commit_callbacks
):
    typed = {
        "name": "Ada",
        "email": "ada@example.com",
        "subject": "Pricing\nBcc: all@example.com",
        "message": "Keep me",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/contact/", typed)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Please keep this to one line: line breaks and control characters are not allowed." in body
    assert "Keep me" in body and "Bcc: all@example.com" in body
    assert not ContactMessage.objects.exists() and mail.outbox == []


def test_a_line_break_in_the_consultation_name_is_refused_before_anything_is_saved(
    client, django_capture_on_commit_callbacks
):
    # The name goes into the subject of the notice to sales.
    typed = {"name": "Ada\r\nBcc: all@example.com", "email": "a@example.com", "platform": "woocommerce"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/consultation/", {**typed, "message": "Migrating 3 shops", **business_slot()})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Please keep this to one line: line breaks and control characters are not allowed." in body
    assert "Migrating 3 shops" in body
    assert not ConsultationRequest.objects.exists() and mail.outbox == []


def test_consultation_in_the_past_is_refused_with_a_reason(client):
    past = {**business_slot(days_ahead=-7), "name": "Ada", "email": "a@example.com", "platform": "magento"}
    response = client.post("/consultation/", past)
    assert response.status_code == 200
    assert "Please pick a time at least an hour from now." in response.content.decode()
    assert ConsultationRequest.objects.count() == 0


def test_consultation_outside_business_days_or_hours_is_refused_with_field_errors(client):
    base = {"name": "Ada", "email": "a@example.com", "platform": "magento"}
    late = client.post("/consultation/", {**base, **business_slot(hour=20)}).content.decode()
    assert "we take calls from 9:00 to 17:00 there" in late
    saturday = business_slot()
    saturday_date = datetime.date.fromisoformat(saturday["date"])
    saturday_date += datetime.timedelta(days=(5 - saturday_date.weekday()) % 7)
    weekend = client.post("/consultation/", {**base, **saturday, "date": saturday_date.isoformat()})
    assert "We take calls Monday to Friday" in weekend.content.decode()
    bad_zone = client.post("/consultation/", {**base, **business_slot(), "timezone": "Mars/Olympus"})
    assert "Select a valid choice" in bad_zone.content.decode()
    assert ConsultationRequest.objects.count() == 0


def test_consultation_request_is_saved_confirmed_to_the_prospect_and_sent_to_sales(
    client, django_capture_on_commit_callbacks
):
    slot = business_slot(visitor_zone="Asia/Tokyo")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/consultation/",
            {"name": "Ada", "email": "a@example.com", "platform": "woocommerce", "message": "Migrating", **slot},
        )
    assert response.status_code == 302
    consultation = ConsultationRequest.objects.get()
    assert consultation.status == ConsultationRequest.Status.PENDING and consultation.timezone == "Asia/Tokyo"
    assert consultation.preferred_time.astimezone(zoneinfo.ZoneInfo("America/New_York")).hour == 11
    confirmation, notice = mail.outbox
    assert confirmation.to == ["a@example.com"] and slot["time"] in confirmation.body and confirmation.alternatives
    assert notice.to == ["sales@shophosting.local"] and "Asia/Tokyo" in notice.body


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_base_template_shows_staff_links_only_to_staff(client, staff_user, user_factory):
    client.force_login(user_factory())
    assert "Staff admin" not in client.get("/contact/").content.decode()
    client.force_login(staff_user)
    assert "Staff admin" in client.get("/contact/").content.decode()
