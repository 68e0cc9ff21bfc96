from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render

from accounts.selectors import staff_session_trusted
from consultations.attachments import attachment_path
from consultations.forms import ConsultationForm, TicketForm, TicketReplyForm
from consultations.models import Ticket, TicketAttachment
from consultations.services import (
    TicketClosed,
    consultation_request_create,
    ticket_create,
    ticket_reply_customer,
)
from shophosting.core.ratelimits import rate_limited


@rate_limited("consultation")
def consultation_view(request):
    form = ConsultationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        consultation_request_create(**form.save_fields())
        messages.success(request, "Thanks, we will confirm your consultation by e-mail.")
        return redirect("consultations:consultation")
    return render(request, "consultations/consultation.html", {"form": form})


# --- Support tickets (customer side) ----------------------------------------------------------------------


def _own_ticket(request, number: str) -> Ticket:
    # Another customer's ticket number is a 404, the same as a missing one.
    return get_object_or_404(Ticket.objects.select_related("store"), number=number, customer=request.user)


@login_required
def ticket_list_view(request):
    tickets = Ticket.objects.filter(customer=request.user).select_related("store").order_by("-updated_at")
    return render(request, "consultations/ticket_list.html", {"tickets": tickets})


@login_required
@rate_limited("ticket_post", key="user")
def ticket_create_view(request):
    form = TicketForm(request.POST or None, request.FILES or None, customer=request.user)
    if request.method == "POST" and form.is_valid():
        fields = form.cleaned_data
        try:
            ticket = ticket_create(
                customer=request.user,
                category=fields["category"],
                subject=fields["subject"],
                body=fields["body"],
                store=fields["store"],
                attachments=fields["attachments"],
            )
        except ValidationError as exc:
            form.add_error("attachments", exc)
        else:
            messages.success(request, f"Ticket {ticket.number} is open. We answer by e-mail and here.")
            return redirect("consultations:ticket", ticket.number)
    return render(request, "consultations/ticket_new.html", {"form": form})


@login_required
@rate_limited("ticket_post", key="user")
def ticket_detail_view(request, number: str):
    ticket = _own_ticket(request, number)
    form = TicketReplyForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            ticket_reply_customer(
                ticket_id=ticket.pk,
                author=request.user,
                body=form.cleaned_data["body"],
                attachments=form.cleaned_data["attachments"],
            )
        except TicketClosed as exc:
            form.add_error(None, str(exc))
        except ValidationError as exc:
            form.add_error("attachments", exc)
        else:
            messages.success(request, "Your reply was sent.")
            return redirect("consultations:ticket", ticket.number)
    # Internal staff notes never leave the server for the customer.
    thread = ticket.messages.filter(internal=False).select_related("author").prefetch_related("attachments")
    return render(request, "consultations/ticket_detail.html", {"ticket": ticket, "thread": thread, "form": form})


@login_required
def attachment_download_view(request, attachment_id: int):
    """Only the ticket's customer (never on an internal note) and staff who may view tickets, in a session that
    passed every staff gate (second factor, no temporary password), get the file, always as a download."""
    attachment = get_object_or_404(TicketAttachment.objects.select_related("message__ticket"), pk=attachment_id)
    message = attachment.message
    staff_allowed = request.user.has_perm("consultations.view_ticket") and staff_session_trusted(request)
    allowed = staff_allowed or (message.ticket.customer_id == request.user.pk and not message.internal)
    if not allowed:
        raise Http404
    path = attachment_path(attachment.stored_name)
    if not path.exists():
        raise Http404
    response = FileResponse(open(path, "rb"), as_attachment=True, filename=attachment.original_name)
    response["Content-Type"] = "application/octet-stream"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
