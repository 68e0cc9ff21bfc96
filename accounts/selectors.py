"""Reads about a session's standing: which gate it must pass before it sees anything else."""

from django.conf import settings
from django.http import HttpRequest
from django_otp import user_has_device


def second_factor_pending(request: HttpRequest) -> str | None:
    """The page this session must pass first: the code page when the user has a confirmed device and this
    session has not given a code yet; the enrolment when staff need a device and have none; else None."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.is_verified():
        return None
    # Loaded with the user by accounts.backends.AccountBackend; asked of django-otp for a user loaded otherwise.
    has_device = getattr(user, "has_confirmed_device", None)
    if has_device is None:
        has_device = user_has_device(user, confirmed=True)
    if has_device:
        return "accounts:second_factor"
    if user.is_staff and settings.STAFF_TWO_FACTOR_REQUIRED:
        return "accounts:two_factor"
    return None


def password_change_pending(request: HttpRequest) -> bool:
    """A staff member on a temporary password sees nothing but the password change until they set one."""
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff and user.must_change_password)


def staff_session_trusted(request: HttpRequest) -> bool:
    """Whether this session may see customer data as staff: an active staff account that has passed every
    staff gate (no temporary password, and the second factor when it has a device or staff need one)."""
    user = getattr(request, "user", None)
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and second_factor_pending(request) is None
        and not password_change_pending(request)
    )
