"""django-axes' name for an account (AXES_USERNAME_CALLABLE): the address as accounts store it, so that
`V@x.com` and `v@x.com` count against one lockout, on every sign-in form (customer, admin, Wagtail)."""

from django.conf import settings

from accounts.models import email_normalise


def lockout_username(request, credentials: dict | None) -> str | None:
    field = settings.AXES_USERNAME_FORM_FIELD
    if credentials:
        raw = credentials.get(field)
    else:
        raw = getattr(request, "data", request.POST).get(field) if request is not None else None
    return email_normalise(raw) if raw else raw
