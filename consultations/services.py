import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Sum

from accounts.models import User
from accounts.services import audit_record
from consultations.attachments import attachment_check, attachment_store
from consultations.models import (
    ConsultationEvent,
    ConsultationRequest,
    ContactMessage,
    Ticket,
    TicketAttachment,
    TicketEvent,
    TicketMessage,
)
from consultations.response_targets import first_response_target
from shophosting.core.emails import email_send
from shophosting.core.transitions import InvalidTransition, transition
from shophosting.core.validators import header_safe


def _notify_staff(subject: str, body: str) -> None:
    # header_safe: the forms refuse line breaks, but rows saved before that check (or by staff) still arrive.
    send_mail(header_safe(subject), body, settings.DEFAULT_FROM_EMAIL, [settings.SUPPORT_EMAIL], fail_silently=True)


@transaction.atomic
def contact_message_create(**fields) -> ContactMessage:
    message = ContactMessage.objects.create(**fields)
    transaction.on_commit(
        lambda: _notify_staff(
            f"[contact] {message.subject}", f"From {message.name} <{message.email}>\n\n{message.message}"
        )
    )
    return message


CM = ContactMessage.Status
# to-status -> the statuses a contact message may reach it from. An answered message was answered: it can be
# closed, not made new again; a closed one can be reopened as new.
CONTACT_ALLOWED_FROM = {
    CM.NEW: {CM.CLOSED},
    CM.ANSWERED: {CM.NEW},
    CM.CLOSED: {CM.NEW, CM.ANSWERED},
}


def _staff_transition(model, pk: int, to: str, *, actor: User | None, noun: str, title, **options):
    """A status staff move in the admin: the shared transition, refused in words for staff ("Ada: a pending
    consultation cannot become completed."), and audited as `<noun>_status_changed`."""
    key = noun.replace(" ", "_")
    return transition(
        model,
        pk,
        to,
        actor=actor,
        refusal=lambda row, to: (
            f"{title(row)}: a {row.get_status_display().lower()} {noun} cannot become {model.Status(to).label.lower()}."
        ),
        on_change=lambda row, old: audit_record(
            event=f"{key}_status_changed", actor=actor, old=old, new=to, **{key: row.pk}
        ),
        **options,
    )


def contact_message_transition(*, message_id: int, to: str, actor: User | None = None) -> ContactMessage:
    """The one writer of ContactMessage.status (staff, in the admin). It has no event table of its own: the
    change goes into the audit log."""
    return _staff_transition(
        ContactMessage,
        message_id,
        to,
        actor=actor,
        noun="contact message",
        title=lambda message: f"“{message.subject}”",
        allowed_from=CONTACT_ALLOWED_FROM,
        event_model=None,
    )


@transaction.atomic
def consultation_request_create(**fields) -> ConsultationRequest:
    """Stores the request, confirms it to the prospect (in their time zone) and tells sales, after commit."""
    consultation = ConsultationRequest.objects.create(**fields)
    local = consultation.preferred_time.astimezone(zoneinfo.ZoneInfo(consultation.timezone))
    transaction.on_commit(
        lambda: email_send(
            template="consultation_confirmation",
            to=[consultation.email],
            # Pre-formatted: template date filters would turn the time back into the server's zone.
            context={
                "consultation": consultation,
                "local_date": f"{local:%A %-d %B %Y}",
                "local_time": f"{local:%H:%M}",
            },
        )
    )
    transaction.on_commit(
        lambda: send_mail(
            header_safe(f"[consultation] {consultation.name} at {consultation.preferred_time:%Y-%m-%d %H:%M} UTC"),
            f"{consultation.name} <{consultation.email}> {consultation.phone}\n"
            f"Their time: {local:%Y-%m-%d %H:%M} {consultation.timezone}\n"
            f"Platform: {consultation.get_platform_display()}\n\n{consultation.message}",
            settings.DEFAULT_FROM_EMAIL,
            [settings.SALES_EMAIL],
            fail_silently=True,
        )
    )
    return consultation


# --- Support tickets --------------------------------------------------------------------------------------

T = Ticket.Status
# to-status -> the statuses it may be reached from (staff may also set any status but from closed).
TICKET_ALLOWED_FROM = {
    T.OPEN: {T.WAITING, T.RESOLVED, T.IN_PROGRESS, T.CLOSED},  # from closed: staff reopen it
    T.IN_PROGRESS: {T.OPEN, T.WAITING, T.RESOLVED},
    T.WAITING: {T.OPEN, T.IN_PROGRESS},
    T.RESOLVED: {T.OPEN, T.IN_PROGRESS, T.WAITING},
    T.CLOSED: {T.OPEN, T.IN_PROGRESS, T.WAITING, T.RESOLVED},
}


class TicketClosed(Exception):
    """A closed ticket takes no more replies."""


def ticket_transition(*, ticket_id: int, to: str, actor: User | None = None, note: str = "") -> Ticket:
    """The one writer of Ticket.status: the shared transition, along TICKET_ALLOWED_FROM; a ticket that
    already has the status is left as it is."""
    return transition(
        Ticket,
        ticket_id,
        to,
        allowed_from=TICKET_ALLOWED_FROM,
        event_model=TicketEvent,
        event_link="ticket",
        actor=actor,
        note=note,
        same_is_noop=True,
        refusal=lambda ticket, to: f"ticket {ticket.number}: {ticket.status} -> {to} is not allowed",
    )


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def _attachments_quota_check(*, ticket: Ticket, uploads) -> None:
    """Refuse uploads that would take the ticket or its customer over TICKET_ATTACHMENT_QUOTA_PER_TICKET or
    _PER_CUSTOMER (bytes). Runs before any file is written. The customer's row is locked, so two uploads
    at once cannot both fit into the last free space."""
    incoming = sum(upload.size for upload in uploads)
    if not incoming:
        return
    User.objects.select_for_update().only("pk").get(pk=ticket.customer_id)
    attachments = TicketAttachment.objects.filter(message__ticket__customer_id=ticket.customer_id)
    on_ticket = attachments.filter(message__ticket=ticket).aggregate(total=Sum("size"))["total"] or 0
    on_account = attachments.aggregate(total=Sum("size"))["total"] or 0
    per_ticket = settings.TICKET_ATTACHMENT_QUOTA_PER_TICKET
    per_customer = settings.TICKET_ATTACHMENT_QUOTA_PER_CUSTOMER
    if on_ticket + incoming > per_ticket:
        raise ValidationError(
            f"These files ({_megabytes(incoming)}) would take this ticket's attachments over its "
            f"{_megabytes(per_ticket)} limit ({_megabytes(on_ticket)} used). Send fewer or smaller files, "
            "or a link to them."
        )
    if on_account + incoming > per_customer:
        raise ValidationError(
            f"These files ({_megabytes(incoming)}) would take your tickets' attachments over your "
            f"{_megabytes(per_customer)} limit ({_megabytes(on_account)} used). Send a link to them instead."
        )


def _attachments_save(message: TicketMessage, uploads) -> None:
    # Every check before the first file is written: a refusal leaves nothing behind on disk.
    checked_files = [attachment_check(upload) for upload in uploads]
    _attachments_quota_check(ticket=message.ticket, uploads=uploads)
    for upload, checked in zip(uploads, checked_files, strict=True):
        stored_name, digest = attachment_store(upload)
        TicketAttachment.objects.create(
            message=message,
            original_name=checked.original_name,
            stored_name=stored_name,
            content_type=checked.content_type,
            size=checked.size,
            sha256=digest,
        )


def ticket_create(
    *, customer: User, category: str, subject: str, body: str, store=None, attachments=(), priority: str = ""
) -> Ticket:
    """A new ticket with its first message, and when its first staff answer is due (the customer's target,
    by their plans). Its number, TKT-000123, comes from the row's own id, so two tickets created at once can
    never share one."""
    with transaction.atomic():
        ticket = Ticket.objects.create(
            customer=customer, category=category, subject=subject, store=store, priority=priority or "normal"
        )
        ticket.number = f"TKT-{ticket.pk:06d}"
        ticket.first_response_due_at = ticket.created_at + first_response_target(customer_id=customer.pk)
        ticket.save(update_fields=["number", "first_response_due_at"])
        TicketEvent.objects.create(ticket=ticket, new_status=ticket.status, actor=customer, note="opened")
        message = TicketMessage.objects.create(ticket=ticket, author=customer, body=body)
        _attachments_save(message, attachments)
        transaction.on_commit(
            lambda: _notify_staff(
                f"[{ticket.number}] {ticket.subject}",
                f"{customer.email} opened a {ticket.get_category_display().lower()} ticket:\n\n{body}",
            )
        )
    return ticket


def ticket_reply_customer(*, ticket_id: int, author: User, body: str, attachments=()) -> TicketMessage:
    """The customer writes: refused on a closed ticket; a ticket waiting on the customer opens again."""
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket_id, customer=author)
        if ticket.status == T.CLOSED:
            raise TicketClosed(f"{ticket.number} is closed. Open a new ticket and mention it, please.")
        message = TicketMessage.objects.create(ticket=ticket, author=author, body=body)
        _attachments_save(message, attachments)
        if ticket.status in (T.WAITING, T.RESOLVED):
            ticket_transition(ticket_id=ticket.pk, to=T.OPEN, actor=author, note="customer replied")
        else:
            ticket.save(update_fields=["updated_at"])
        transaction.on_commit(
            lambda: _notify_staff(f"[{ticket.number}] new reply from {author.email}", body),
        )
    return message


def ticket_reply_staff(*, ticket_id: int, author: User, body: str, internal: bool = False) -> TicketMessage:
    """Staff answer (the customer is e-mailed, the ticket waits on them, and the first answer stops the
    first-response clock) or add an internal note (never shown to the customer, no e-mail, status and clock
    unchanged)."""
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().select_related("customer").get(pk=ticket_id)
        if ticket.status == T.CLOSED and not internal:
            raise TicketClosed(f"{ticket.number} is closed; reopen it before answering.")
        message = TicketMessage.objects.create(
            ticket=ticket, author=author, body=body, from_staff=True, internal=internal
        )
        if internal:
            return message
        if ticket.first_response_at is None:  # the first answer stops the first-response clock
            ticket.first_response_at = message.created_at
            ticket.save(update_fields=["first_response_at", "updated_at"])
        if ticket.status in (T.OPEN, T.IN_PROGRESS):
            ticket_transition(ticket_id=ticket.pk, to=T.WAITING, actor=author, note="staff answered")
        context = {"ticket": ticket, "body": body, "author_name": author.get_short_name() or "ShopHosting support"}
        email = ticket.customer.email
        transaction.on_commit(lambda: email_send(template="ticket_reply", to=[email], context=context))
    return message


# --- Consultations pipeline (staff) -----------------------------------------------------------------------

C = ConsultationRequest.Status
CONSULTATION_ALLOWED_FROM = {
    C.CONFIRMED: {C.PENDING},
    C.COMPLETED: {C.CONFIRMED},
    C.NO_SHOW: {C.CONFIRMED},
    C.CANCELLED: {C.PENDING, C.CONFIRMED},
}


IllegalTransition = InvalidTransition  # the old name, kept for callers


def consultation_transition(*, consultation_id: int, to: str, actor: User | None = None) -> ConsultationRequest:
    """The one writer of ConsultationRequest.status: pending → confirmed → completed | no_show; pending or
    confirmed → cancelled. Anything else is refused."""
    return _staff_transition(
        ConsultationRequest,
        consultation_id,
        to,
        actor=actor,
        noun="consultation",
        title=lambda consultation: consultation.name,
        allowed_from=CONSULTATION_ALLOWED_FROM,
        event_model=ConsultationEvent,
        event_link="consultation",
    )
