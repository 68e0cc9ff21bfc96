"""Support tickets: attachments checked by their magic bytes and kept private, staff answers and internal
notes, status rules, and numbers."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.roles import Role
from accounts.services import staff_user_ensure
from consultations.models import Ticket, TicketAttachment
from consultations.services import ticket_create, ticket_transition

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56 + b"machine code"


def new_ticket(client, **files):
    data = {"category": "technical", "subject": "The shop is slow", "body": "Since this morning, pages take 10 s."}
    return client.post(reverse("consultations:ticket_new"), {**data, **files})


def test_a_ticket_with_an_attachment_is_numbered_and_its_file_served_only_to_its_owner_and_staff(
    client, user_factory, staff_user
):
    owner = user_factory(email="owner@example.com")
    client.force_login(owner)

    response = new_ticket(client, attachments=[SimpleUploadedFile("invoice.pdf", PDF)])

    ticket = Ticket.objects.get()
    assert ticket.number == f"TKT-{ticket.pk:06d}"
    assert response.status_code == 302 and response["Location"] == f"/support/{ticket.number}/"
    attachment = TicketAttachment.objects.get()
    stored = Path(settings.TICKET_ATTACHMENT_DIR) / attachment.stored_name
    assert stored.read_bytes() == PDF and attachment.stored_name != "invoice.pdf"
    assert not str(stored).startswith(str(settings.STATIC_ROOT)) and not str(stored).startswith(
        str(settings.MEDIA_ROOT)
    )
    assert attachment.content_type == "application/pdf"
    url = reverse("consultations:attachment", args=[attachment.pk])
    download = client.get(url)
    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
    assert download["Content-Disposition"].startswith('attachment; filename="invoice.pdf"')
    assert download["Content-Type"] == "application/octet-stream"
    assert ticket.number in client.get(reverse("consultations:tickets")).content.decode()

    client.force_login(user_factory(email="other@example.com"))
    assert client.get(url).status_code == 404
    assert client.get(reverse("consultations:ticket", args=[ticket.number])).status_code == 404
    assert ticket.number not in client.get(reverse("consultations:tickets")).content.decode()
    client.force_login(staff_user)
    assert client.get(url).status_code == 200


def test_a_renamed_executable_and_an_11_mb_file_are_refused_and_nothing_is_kept(client, user_factory):
    client.force_login(user_factory())

    renamed = new_ticket(client, attachments=[SimpleUploadedFile("report.pdf", ELF)])
    too_big = new_ticket(client, attachments=[SimpleUploadedFile("big.zip", b"PK\x03\x04" + b"0" * (11 * 1024 * 1024))])
    fake_text = new_ticket(client, attachments=[SimpleUploadedFile("notes.txt", ELF)])
    wrong_kind = new_ticket(client, attachments=[SimpleUploadedFile("setup.exe", b"MZ" + b"\x00" * 100)])

    assert "“report.pdf” is a elf file, not .pdf as its name says." in renamed.content.decode()
    assert "“big.zip” is 11.0 MB; attachments can be at most 10 MB." in too_big.content.decode()
    assert "“notes.txt” is not a text file" in fake_text.content.decode()
    assert "“setup.exe”: this kind of file cannot be attached." in wrong_kind.content.decode()
    assert 'value="The shop is slow"' in renamed.content.decode()  # what was typed is kept
    assert not Ticket.objects.exists() and not TicketAttachment.objects.exists()


def test_staff_answer_emails_the_customer_and_internal_notes_never_reach_them(
    client, user_factory, staff_user, django_capture_on_commit_callbacks
):
    customer = user_factory(email="customer@example.com")
    ticket = ticket_create(customer=customer, category="billing", subject="Double charge", body="I was charged twice.")
    client.force_login(staff_user)
    change_url = reverse("admin:consultations_ticket_change", args=[ticket.pk])
    form = {"new_status": "open", "priority": "high", "category": "billing", "assignee": staff_user.pk}
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(change_url, {**form, "reply": "SECRET: refund via Stripe dashboard", "internal_note": "on"})
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        client.post(change_url, {**form, "reply": "We refunded the second charge."})

    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.WAITING and ticket.priority == "high" and ticket.assignee == staff_user
    [email] = mail.outbox
    assert email.to == ["customer@example.com"] and ticket.number in email.subject
    assert "We refunded the second charge." in email.body and "SECRET" not in email.body
    assert "We refunded the second charge." in email.alternatives[0][0]
    admin_page = client.get(change_url).content.decode()
    assert "SECRET: refund via Stripe dashboard" in admin_page and "Internal note" in admin_page

    client.force_login(customer)
    page = client.get(reverse("consultations:ticket", args=[ticket.number])).content.decode()
    assert "We refunded the second charge." in page and "SECRET" not in page
    assert "SECRET" not in client.get(reverse("consultations:tickets")).content.decode()


def test_a_customer_reply_reopens_a_waiting_ticket_and_a_closed_one_refuses_replies(client, user_factory):
    customer = user_factory()
    ticket = ticket_create(customer=customer, category="store", subject="Theme", body="Which theme?")
    ticket_transition(ticket_id=ticket.pk, to=Ticket.Status.WAITING)
    client.force_login(customer)
    url = reverse("consultations:ticket", args=[ticket.number])

    client.post(url, {"body": "Here is more detail."})
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN
    assert [e.new_status for e in ticket.events.all()] == ["open", "waiting", "open"]

    ticket_transition(ticket_id=ticket.pk, to=Ticket.Status.CLOSED)
    refused = client.post(url, {"body": "One more thing"})
    assert "is closed" in refused.content.decode() or "This ticket is closed" in refused.content.decode()
    assert ticket.messages.count() == 2


def test_support_staff_see_ticket_counts_and_filters(client, user_factory):
    support, _ = staff_user_ensure(email="support@example.com", role=Role.SUPPORT, password="support pass 123")
    customer = user_factory()
    for n, priority in enumerate(["urgent", "normal", "normal"]):
        # Subjects no random token can contain by chance (a CSRF token once held "T1").
        ticket_create(
            customer=customer, category="technical", subject=f"Filter subject number {n}", body="x", priority=priority
        )
    waiting = Ticket.objects.order_by("pk").last()
    ticket_transition(ticket_id=waiting.pk, to=Ticket.Status.WAITING)
    client.force_login(support)

    page = client.get(reverse("admin:consultations_ticket_changelist")).content.decode()

    assert '<strong data-count="open">2</strong>' in page
    assert '<strong data-count="waiting">1</strong>' in page
    assert '<strong data-count="urgent">1</strong>' in page
    assert '<strong data-count="unassigned">3</strong>' in page
    filtered = client.get(reverse("admin:consultations_ticket_changelist") + "?priority__exact=urgent").content.decode()
    assert "Filter subject number 0" in filtered and "Filter subject number 1" not in filtered


def test_a_line_break_in_a_ticket_subject_is_refused_before_anything_is_saved(
    client, user_factory, django_capture_on_commit_callbacks
):
    client.force_login(user_factory())
    with django_capture_on_commit_callbacks(execute=True):
        response = new_ticket(client, subject="The shop is slow\r\nBcc: everyone@example.com")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Please keep this to one line: line breaks and control characters are not allowed." in page
    assert "Since this morning, pages take 10 s." in page and "Bcc: everyone@example.com" in page  # kept
    assert not Ticket.objects.exists() and mail.outbox == []


def test_a_subject_saved_with_a_line_break_before_the_check_still_mails_on_one_line(
    user_factory, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ticket = ticket_create(customer=user_factory(), category="other", subject="Old\nsubject", body="From before.")
    [notice] = mail.outbox
    assert notice.subject == f"[{ticket.number}] Old subject"


def pdf_of(size: int) -> bytes:
    return PDF + b"%" * (size - len(PDF))


def test_attachments_have_a_quota_per_ticket_and_per_customer_and_a_refusal_keeps_the_message(
    client, user_factory, settings
):
    settings.TICKET_ATTACHMENT_QUOTA_PER_TICKET = 100_000
    settings.TICKET_ATTACHMENT_QUOTA_PER_CUSTOMER = 150_000
    customer = user_factory()
    client.force_login(customer)
    new_ticket(client, attachments=[SimpleUploadedFile("a.pdf", pdf_of(60_000))])
    ticket = Ticket.objects.get()

    over_ticket = client.post(
        reverse("consultations:ticket", args=[ticket.number]),
        {"body": "Here is the second log, the long one.", "attachments": [SimpleUploadedFile("b.pdf", pdf_of(60_000))]},
    )
    assert over_ticket.status_code == 200
    page = over_ticket.content.decode()
    assert "would take this ticket&#x27;s attachments over its 0.1 MB limit" in page
    assert "Here is the second log, the long one." in page  # what was typed is kept
    assert ticket.messages.count() == 1 and TicketAttachment.objects.count() == 1

    new_ticket(client, attachments=[SimpleUploadedFile("c.pdf", pdf_of(60_000))])  # 120 000 bytes in all: fits
    over_customer = new_ticket(client, attachments=[SimpleUploadedFile("d.pdf", pdf_of(60_000))])
    assert over_customer.status_code == 200
    page = over_customer.content.decode()
    assert "would take your tickets&#x27; attachments over your 0.1 MB limit" in page
    assert 'value="The shop is slow"' in page
    assert Ticket.objects.count() == 2 and TicketAttachment.objects.count() == 2


def test_new_tickets_and_replies_are_rate_limited_per_account(client, user_factory):
    customer = user_factory()
    ticket = ticket_create(customer=customer, category="store", subject="Theme", body="Which theme?")
    client.force_login(customer)
    url = reverse("consultations:ticket", args=[ticket.number])
    # 5 a minute: 11 posts see a 429 however a minute boundary splits them; the first 5 never do.
    responses = [client.post(url, {"body": f"Reply {n}"}) for n in range(11)]
    assert all(response.status_code == 302 for response in responses[:5])
    limited = [response for response in responses if response.status_code == 429]
    assert limited and b"Too many support messages" in limited[0].content and limited[0]["Retry-After"]
    assert ticket.messages.count() == 1 + 11 - len(limited)
