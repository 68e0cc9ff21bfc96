"""How soon a ticket is owed its first staff answer.

The target depends on what the customer bought, which billing knows and consultations may not ask for:
consultations sits below billing (pyproject.toml, the layers contract). So billing plugs its answer in when
it starts (`BillingConfig.ready` calls `first_response_target_source_set`), as it plugs its webhook handlers
into dj-stripe. A ticket keeps the due time computed when it was opened (`Ticket.first_response_due_at`)."""

from collections.abc import Callable
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

FirstResponseTargetSource = Callable[[int], timedelta]

_source: FirstResponseTargetSource | None = None


def first_response_target_source_set(source: FirstResponseTargetSource) -> None:
    """Name the function that answers "how soon is a new ticket of customer <id> owed its first answer"."""
    global _source
    _source = source


def first_response_target(*, customer_id: int) -> timedelta:
    if _source is None:
        # Fail loudly: a ticket without a due time would silently never show as overdue.
        raise ImproperlyConfigured("No first-response target source: is billing in INSTALLED_APPS?")
    return _source(customer_id)
