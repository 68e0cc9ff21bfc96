"""Reads for the ticket desk: which tickets still wait for their first staff answer, and which are late."""

from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from consultations.models import Ticket

# "Due soon" on the staff pages: a ticket whose first answer falls due within this long.
DUE_SOON = timedelta(hours=1)


def tickets_awaiting_first_response() -> QuerySet[Ticket]:
    """Tickets no staff member has answered yet, still open to staff (not resolved or closed)."""
    return Ticket.objects.filter(
        first_response_at__isnull=True, first_response_due_at__isnull=False, status__in=Ticket.AWAITING_STAFF
    )


def tickets_first_response_overdue() -> QuerySet[Ticket]:
    return tickets_awaiting_first_response().filter(first_response_due_at__lt=timezone.now())


def tickets_first_response_due_soon() -> QuerySet[Ticket]:
    """Not late yet, but due within DUE_SOON."""
    now = timezone.now()
    return tickets_awaiting_first_response().filter(
        first_response_due_at__gte=now, first_response_due_at__lt=now + DUE_SOON
    )


def tickets_first_response_late_counts() -> tuple[int, int]:
    """How many tickets are past their first-answer target, and how many fall due within DUE_SOON: the two
    filters above, counted in one query (the staff index shows both on every view)."""
    now = timezone.now()
    counts = tickets_awaiting_first_response().aggregate(
        overdue=Count("pk", filter=Q(first_response_due_at__lt=now)),
        due_soon=Count("pk", filter=Q(first_response_due_at__gte=now, first_response_due_at__lt=now + DUE_SOON)),
    )
    return counts["overdue"], counts["due_soon"]
