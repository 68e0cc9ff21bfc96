"""How the admin shows a job's error: the summary line, and the detail (a traceback, or JSON indented)
folded under it."""

import json

from django import template
from django.utils.html import format_html

register = template.Library()


def _indented_json(text: str) -> str | None:
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end <= start:
        return None
    try:
        parsed = json.loads(text[start : end + 1])
    except ValueError:
        return None
    return text[:start] + json.dumps(parsed, indent=2, sort_keys=True) + text[end + 1 :]


@register.filter
def pretty_error(text: str):
    if not text:
        return ""
    summary, _, detail = text.strip().partition("\n\n")
    detail = _indented_json(detail) or detail if detail else _indented_json(summary) or ""
    if not detail:
        return format_html('<p class="staff-error">{}</p>', summary)
    return format_html(
        '<details class="staff-error"><summary>{}</summary><pre>{}</pre></details>', summary, detail.strip()
    )
