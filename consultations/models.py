from django.conf import settings
from django.db import models

from shophosting.core.transitions import StatusEvent
from shophosting.core.validators import single_line


class ContactMessage(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        ANSWERED = "answered", "Answered"
        CLOSED = "closed", "Closed"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    name = models.CharField(max_length=120, validators=[single_line])
    email = models.EmailField()
    company = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=200, validators=[single_line])  # becomes the notice's Subject
    message = models.TextField(max_length=5000)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.subject} ({self.email})"


class ConsultationRequest(models.Model):
    """A visitor asks for a call; staff move it through the pipeline."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CONFIRMED = "confirmed", "Confirmed"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        NO_SHOW = "no_show", "No-show"

    class Platform(models.TextChoices):
        WOOCOMMERCE = "woocommerce", "WooCommerce"
        MAGENTO = "magento", "Magento 2"
        UNSURE = "unsure", "Not sure yet"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    name = models.CharField(max_length=120, validators=[single_line])  # in the sales notice's Subject
    email = models.EmailField()
    phone = models.CharField(max_length=40, blank=True)
    company = models.CharField(max_length=200, blank=True)
    platform = models.CharField(max_length=20, choices=Platform.choices, default=Platform.UNSURE)
    preferred_time = models.DateTimeField(help_text="When the visitor would like the call (stored in UTC).")
    timezone = models.CharField(max_length=64, default="UTC", help_text="The visitor's time zone (IANA name).")
    message = models.TextField(max_length=5000, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_consultations",
        limit_choices_to={"is_staff": True},
    )
    staff_notes = models.TextField(blank=True, help_text="For staff only.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} <{self.email}> {self.preferred_time:%Y-%m-%d %H:%M}"


class ConsultationEvent(StatusEvent):
    consultation = models.ForeignKey(ConsultationRequest, on_delete=models.CASCADE, related_name="events")

    def __str__(self):
        return f"{self.consultation_id}: {super().__str__()}"


class Ticket(models.Model):
    """A customer's support request. `status` is written only by consultations.services, with a TicketEvent."""

    class Category(models.TextChoices):
        TECHNICAL = "technical", "Technical problem"
        STORE = "store", "My store"
        BILLING = "billing", "Billing"
        ACCOUNT = "account", "Account"
        OTHER = "other", "Something else"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        WAITING = "waiting", "Waiting on you"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    number = models.CharField(max_length=20, unique=True, null=True, editable=False)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tickets")
    store = models.ForeignKey("stores.Store", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.TECHNICAL)
    subject = models.CharField(max_length=200, validators=[single_line])  # in every ticket mail's Subject
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL, db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_tickets",
        limit_choices_to={"is_staff": True},
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When the first staff answer is due: the opening time plus the customer's target then
    # (consultations/response_targets.py). The first staff answer (not an internal note) stops the clock.
    first_response_due_at = models.DateTimeField(null=True, blank=True, db_index=True, editable=False)
    first_response_at = models.DateTimeField(null=True, blank=True, editable=False)

    # A ticket in these statuses still waits for staff to pick it up; a resolved or closed one does not.
    AWAITING_STAFF = (Status.OPEN, Status.IN_PROGRESS, Status.WAITING)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self):
        return f"{self.number} {self.subject}"

    @property
    def first_response_hours(self) -> int | None:
        """The target this ticket was opened with, in whole hours ("we answer within 4 hours")."""
        if self.first_response_due_at is None:
            return None
        return round((self.first_response_due_at - self.created_at).total_seconds() / 3600)


class TicketMessage(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(max_length=20_000)
    from_staff = models.BooleanField(default=False)
    internal = models.BooleanField(default=False, help_text="A staff note: never shown to the customer.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.ticket.number}: {'note' if self.internal else 'message'} by {self.author}"


class TicketAttachment(models.Model):
    """A file kept outside the web root (TICKET_ATTACHMENT_DIR) under a random name; served only to the
    ticket's customer and to staff, as a download."""

    message = models.ForeignKey(TicketMessage, on_delete=models.CASCADE, related_name="attachments")
    original_name = models.CharField(max_length=255)
    stored_name = models.CharField(max_length=64, unique=True, editable=False)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.original_name


class TicketEvent(StatusEvent):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")

    def __str__(self):
        return f"{self.ticket_id}: {super().__str__()}"
