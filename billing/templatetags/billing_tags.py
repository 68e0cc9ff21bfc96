from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def cents(value) -> str:
    """Stripe amounts are integer cents: 14900 -> "$149.00"."""
    if value in (None, ""):
        return "—"
    return f"${Decimal(value) / 100:,.2f}"
