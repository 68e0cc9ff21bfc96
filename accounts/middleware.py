"""Two-factor sign-in: a user with a confirmed device reaches nothing but the code page, the sign-out and
static files until this session has passed the second factor. Staff without a device, when
STAFF_TWO_FACTOR_REQUIRED is on, reach no admin page until they have set one up."""

from urllib.parse import quote

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import user_has_device

from shophosting.middleware import is_staff_path

ALLOWED_PREFIXES = ("/static/", "/healthz", "/readyz")


class SecondFactorRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or user.is_verified():
            return self.get_response(request)
        allowed = (
            reverse("accounts:second_factor"),
            reverse("accounts:two_factor"),
            reverse("accounts:logout"),
            reverse("admin:logout"),
        )
        if request.path.startswith(allowed + ALLOWED_PREFIXES):
            return self.get_response(request)
        back = quote(request.get_full_path())
        if user_has_device(user, confirmed=True):
            return redirect(f"{reverse('accounts:second_factor')}?next={back}")
        if user.is_staff and settings.STAFF_TWO_FACTOR_REQUIRED and is_staff_path(request.path):
            return redirect(f"{reverse('accounts:two_factor')}?next={back}")
        return self.get_response(request)


class ForcedPasswordChangeMiddleware:
    """A staff member on a temporary password sees no admin page but the password change until they set one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.must_change_password:
            allowed = (reverse("admin:password_change"), reverse("admin:logout"))
            if is_staff_path(request.path) and not request.path.startswith(allowed):
                return redirect("admin:password_change")
        return self.get_response(request)
