"""Validators shared by every app's forms and models."""

import unicodedata

from django.core.exceptions import ValidationError


def _breaks_a_line(character: str) -> bool:
    # Control characters (\r, \n, \v, \f, \x1c-\x1e, \x85 ...) and the Unicode line and paragraph separators:
    # every one that str.splitlines() or a mail header parser may take for the end of a line. A tab is fine.
    return character != "\t" and unicodedata.category(character) in ("Cc", "Zl", "Zp")


def single_line(value: str) -> None:
    """For values that become an e-mail header (a subject, a name): one line, no control characters.

    Django refuses to send a header with a line break (BadHeaderError), and that happens after the row is
    saved, in the on-commit mail; so the form refuses it first, with a reason, and keeps what was typed."""
    if any(_breaks_a_line(character) for character in value or ""):
        raise ValidationError("Please keep this to one line: line breaks and control characters are not allowed.")


def header_safe(value: str) -> str:
    """A mail header value on one line whatever a row holds (rows saved before the check, or by staff)."""
    return " ".join("".join(" " if _breaks_a_line(c) else c for c in value).split())
