from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from consultations.models import ConsultationRequest, ContactMessage, Ticket
from consultations.selectors import DUE_SOON, tickets_first_response_due_soon, tickets_first_response_overdue
from consultations.services import (
    TicketClosed,
    consultation_transition,
    contact_message_transition,
    ticket_reply_staff,
    ticket_transition,
)
from shophosting.core.transitions import InvalidTransition


def _status_action(change, to: str, label: str, noun: str):
    """An admin action that moves each selected row to `to` through `change(pk, to, actor)` (the app's
    transition service); a row that may not make that move is named in an error and left as it is."""

    @admin.action(description=label, permissions=["change"])
    def action(modeladmin, request, queryset):
        done = 0
        for row in queryset:
            try:
                change(row.pk, to, request.user)
                done += 1
            except InvalidTransition as exc:
                modeladmin.message_user(request, str(exc), messages.ERROR)
        if done:
            modeladmin.message_user(request, f"{done} {noun}(s): {label.lower()}.", messages.SUCCESS)

    action.__name__ = f"mark_{to}"
    return action


def _contact_action(to: str, label: str):
    return _status_action(
        lambda pk, to, actor: contact_message_transition(message_id=pk, to=to, actor=actor), to, label, "message"
    )


def _consultation_action(to: str, label: str):
    return _status_action(
        lambda pk, to, actor: consultation_transition(consultation_id=pk, to=to, actor=actor),
        to,
        label,
        "consultation",
    )


@admin.register(ContactMessage)
class ContactMessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "name", "email", "subject", "status"]
    list_filter = ["status"]
    search_fields = ["name", "email", "subject", "message"]
    # The status moves only through the actions, along the allowed edges (consultations.services).
    readonly_fields = ["created_at", "name", "email", "company", "subject", "message", "status"]
    actions = [
        _contact_action(ContactMessage.Status.ANSWERED, "Mark answered"),
        _contact_action(ContactMessage.Status.CLOSED, "Close"),
        _contact_action(ContactMessage.Status.NEW, "Reopen as new"),
    ]


@admin.register(ConsultationRequest)
class ConsultationRequestAdmin(admin.ModelAdmin):
    list_display = ["preferred_time", "name", "contact", "platform", "status", "assignee", "created_at"]
    list_filter = ["status", "platform", ("preferred_time", admin.DateFieldListFilter), "assignee"]
    list_select_related = ["assignee"]
    search_fields = ["name", "email", "phone", "company"]
    fields = [
        "name",
        "contact",
        "company",
        "platform",
        "preferred_time",
        "timezone",
        "message",
        "status",
        "assignee",
        "staff_notes",
        "created_at",
    ]
    # Staff work on the assignee and the notes; the status moves only through the actions (the workflow).
    readonly_fields = [name for name in fields if name not in ("assignee", "staff_notes")]
    actions = [
        _consultation_action(ConsultationRequest.Status.CONFIRMED, "Confirm"),
        _consultation_action(ConsultationRequest.Status.COMPLETED, "Mark completed"),
        _consultation_action(ConsultationRequest.Status.NO_SHOW, "Mark no-show"),
        _consultation_action(ConsultationRequest.Status.CANCELLED, "Cancel"),
    ]

    def has_add_permission(self, request):
        return False  # requests come from the public booking form

    @admin.display(description="Contact")
    def contact(self, consultation):
        phone = (
            format_html(' · <a href="tel:{}">{}</a>', consultation.phone.replace(" ", ""), consultation.phone)
            if consultation.phone
            else ""
        )
        return format_html('<a href="mailto:{}">{}</a>{}', consultation.email, consultation.email, phone)

    def changelist_view(self, request, extra_context=None):
        now = timezone.now()
        today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
        week = today - timedelta(days=today.weekday())
        stats = ConsultationRequest.objects.aggregate(
            total=Count("pk"),
            today=Count("pk", filter=Q(created_at__gte=today)),
            this_week=Count("pk", filter=Q(created_at__gte=week)),
            pending=Count("pk", filter=Q(status=ConsultationRequest.Status.PENDING)),
            confirmed=Count("pk", filter=Q(status=ConsultationRequest.Status.CONFIRMED)),
        )
        return super().changelist_view(request, {**(extra_context or {}), "consultation_stats": stats})


class FirstResponseFilter(admin.SimpleListFilter):
    """Tickets still owed their first staff answer: late, or due within the hour."""

    title = "first answer"
    parameter_name = "first_response"
    OVERDUE = "overdue"
    DUE_SOON = "due_soon"

    def lookups(self, request, model_admin):
        return [(self.OVERDUE, "Overdue"), (self.DUE_SOON, "Due within 1 h")]

    def queryset(self, request, queryset):
        if self.value() == self.OVERDUE:
            return queryset.filter(pk__in=tickets_first_response_overdue().values("pk"))
        if self.value() == self.DUE_SOON:
            return queryset.filter(pk__in=tickets_first_response_due_soon().values("pk"))
        return queryset


def _duration_text(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


class TicketAdminForm(forms.ModelForm):
    new_status = forms.ChoiceField(label="Status", choices=Ticket.Status.choices)
    reply = forms.CharField(
        label="Answer", required=False, widget=forms.Textarea(attrs={"rows": 5}), help_text="E-mailed to the customer."
    )
    internal_note = forms.BooleanField(
        required=False, label="Internal note", help_text="Keep this text for staff only: no e-mail, never shown."
    )

    class Meta:
        model = Ticket
        fields = ["category", "priority", "assignee"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["new_status"].initial = self.instance.status


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    form = TicketAdminForm
    list_display = [
        "number",
        "subject",
        "customer",
        "category",
        "status",
        "priority",
        "assignee",
        "first_answer",
        "updated_at",
    ]
    list_filter = [
        FirstResponseFilter,
        "status",
        "priority",
        "category",
        ("assignee", admin.EmptyFieldListFilter),
        "assignee",
    ]
    list_select_related = ["customer", "assignee"]
    search_fields = ["number", "subject", "customer__email"]
    readonly_fields = ["number", "customer", "store", "subject", "created_at", "updated_at", "first_answer", "thread"]
    fieldsets = [
        (None, {"fields": ["number", "customer", "store", "subject", "created_at", "updated_at", "first_answer"]}),
        ("Conversation", {"fields": ["thread"]}),
        ("Handle", {"fields": ["new_status", "priority", "category", "assignee"]}),
        ("Answer or note", {"fields": ["reply", "internal_note"]}),
    ]

    @admin.display(description="First answer", ordering="first_response_due_at")
    def first_answer(self, ticket):
        """When staff answered first, or how long until (or since) the first answer is due."""
        if ticket.first_response_at is not None:
            return format_html(
                '<span class="first-answer answered">answered {}</span>', f"{ticket.first_response_at:%Y-%m-%d %H:%M}"
            )
        if ticket.first_response_due_at is None:
            return "–"
        if ticket.status not in Ticket.AWAITING_STAFF:
            return "not answered (no longer open)"
        left = ticket.first_response_due_at - timezone.now()
        if left < timedelta(0):
            return format_html('<span class="first-answer overdue">overdue by {}</span>', _duration_text(-left))
        soon = " due-soon" if left < DUE_SOON else ""
        return format_html('<span class="first-answer{}">due in {}</span>', soon, _duration_text(left))

    @admin.display(description="Messages")
    def thread(self, ticket):
        """The whole thread, internal notes marked; answers and notes are added through the form below."""
        rows = []
        for message in ticket.messages.select_related("author").prefetch_related("attachments"):
            if message.internal:
                kind = "Internal note (never shown to the customer)"
            else:
                kind = "Answer to the customer" if message.from_staff else "From the customer"
            files = format_html_join(
                ", ",
                '<a href="{}">{}</a>',
                (
                    (reverse("consultations:attachment", args=[a.pk]), a.original_name)
                    for a in message.attachments.all()
                ),
            )
            rows.append(
                format_html(
                    '<div class="ticket-message{}"><p><strong>{}</strong> · {} · {}</p>'
                    '<pre style="white-space: pre-wrap">{}</pre>{}</div>',
                    " internal" if message.internal else "",
                    kind,
                    message.author,
                    f"{message.created_at:%Y-%m-%d %H:%M}",
                    message.body,
                    format_html("<p>Attachments: {}</p>", files) if files else "",
                )
            )
        return format_html_join("", "{}", ((row,) for row in rows))

    def has_add_permission(self, request):
        return False  # customers open tickets from their dashboard

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.save(update_fields=["category", "priority", "assignee", "updated_at"])
        reply = form.cleaned_data.get("reply", "").strip()
        try:
            if reply:
                ticket_reply_staff(
                    ticket_id=obj.pk, author=request.user, body=reply, internal=form.cleaned_data["internal_note"]
                )
            new_status = form.cleaned_data["new_status"]
            if new_status != obj.status:  # obj still holds the status the page was opened with
                ticket_transition(ticket_id=obj.pk, to=new_status, actor=request.user, note="set by staff")
        except (TicketClosed, InvalidTransition) as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def changelist_view(self, request, extra_context=None):
        open_statuses = [Ticket.Status.OPEN, Ticket.Status.IN_PROGRESS, Ticket.Status.WAITING]
        counts = Ticket.objects.aggregate(
            open=Count("pk", filter=Q(status=Ticket.Status.OPEN)),
            in_progress=Count("pk", filter=Q(status=Ticket.Status.IN_PROGRESS)),
            waiting=Count("pk", filter=Q(status=Ticket.Status.WAITING)),
            urgent=Count("pk", filter=Q(priority=Ticket.Priority.URGENT, status__in=open_statuses)),
            unassigned=Count("pk", filter=Q(assignee=None, status__in=open_statuses)),
        )
        counts["first_response_overdue"] = tickets_first_response_overdue().count()
        return super().changelist_view(request, {**(extra_context or {}), "ticket_counts": counts})
