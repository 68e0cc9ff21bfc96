"""The sign-in gates. They apply to every request of a signed-in user, whatever its path, except a small
allow-list of pages needed to pass the gate itself: customer-data pages live outside the admin prefixes
too (ticket attachments), so a gate keyed on path prefixes would leave them open.

- A user with a confirmed device whose session has not passed the second factor reaches only the code page
  and sign-out.
- Staff without a device, when STAFF_TWO_FACTOR_REQUIRED, reach only the enrolment page, the password change
  and sign-out.
- Staff on a temporary password reach only the password change, the enrolment page and sign-out.
"""

from urllib.parse import quote

from django.shortcuts import redirect
from django.urls import reverse

from accounts.selectors import password_change_pending, second_factor_pending

# Public and free of user data: served to any session.
PUBLIC_PREFIXES = ("/static/", "/healthz", "/readyz")
SIGN_OUT = ("accounts:logout", "admin:logout", "wagtailadmin_logout")
# Pages open to a session that still has a gate to pass, per gate (exact paths, not prefixes).
OPEN_BEFORE_CODE = ("accounts:second_factor", *SIGN_OUT)
OPEN_BEFORE_STAFF_SETUP = ("accounts:two_factor", "admin:password_change", "admin:password_change_done", *SIGN_OUT)
# The code page too: a staff member with a device gives the code first, then changes the password.
OPEN_BEFORE_PASSWORD_CHANGE = (*OPEN_BEFORE_STAFF_SETUP, "accounts:second_factor")


def _open(path: str, names: tuple[str, ...]) -> bool:
    return path.startswith(PUBLIC_PREFIXES) or path in {reverse(name) for name in names}


class SecondFactorRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        gate = second_factor_pending(request)
        if gate is None:
            return self.get_response(request)
        open_pages = OPEN_BEFORE_CODE if gate == "accounts:second_factor" else OPEN_BEFORE_STAFF_SETUP
        if _open(request.path, open_pages):
            return self.get_response(request)
        return redirect(f"{reverse(gate)}?next={quote(request.get_full_path())}")


class ForcedPasswordChangeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if password_change_pending(request) and not _open(request.path, OPEN_BEFORE_PASSWORD_CHANGE):
            return redirect("admin:password_change")
        return self.get_response(request)
