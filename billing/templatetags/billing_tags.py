from django import template

from billing.models import money_text

register = template.Library()


@register.filter
def cents(value) -> str:
    """Stripe amounts are integer cents: 14900 -> "$149.00"."""
    if value in (None, ""):
        return "—"
    return money_text(value)
