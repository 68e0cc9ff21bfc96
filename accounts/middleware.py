"""Two-factor sign-in: a customer with a confirmed device reaches nothing but the code page, the sign-out
and static files until this session has passed the second factor."""

from django.shortcuts import redirect
from django.urls import reverse
from django_otp import user_has_device

ALLOWED_PREFIXES = ("/static/", "/healthz", "/readyz")


class SecondFactorRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not user.is_staff and not user.is_verified():
            allowed = (reverse("accounts:second_factor"), reverse("accounts:logout"))
            if not request.path.startswith(allowed + ALLOWED_PREFIXES) and user_has_device(user, confirmed=True):
                return redirect(f"{reverse('accounts:second_factor')}?next={request.get_full_path()}")
        return self.get_response(request)


class ForcedPasswordChangeMiddleware:
    """A staff member on a temporary password sees no admin page but the password change until they set one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.must_change_password:
            from django.conf import settings

            admin_prefixes = (f"/{settings.ADMIN_URL}", f"/{settings.WAGTAIL_ADMIN_URL}", "/django-rq/")
            allowed = (reverse("admin:password_change"), reverse("admin:logout"))
            if request.path.startswith(admin_prefixes) and not request.path.startswith(allowed):
                return redirect("admin:password_change")
        return self.get_response(request)
