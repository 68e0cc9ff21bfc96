from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from accounts import two_factor
from accounts.exceptions import TwoFactorRefused
from accounts.forms import EmailChangeForm, LoginForm
from accounts.services import EmailChangeRefused, audit_record, email_change_confirm, email_change_request
from shophosting.core.ratelimits import rate_limited


@method_decorator(rate_limited("customer_login"), name="dispatch")
class CustomerLoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class CustomerLogoutView(auth_views.LogoutView):
    pass


FORM_PAGE = "accounts/form_page.html"


@method_decorator(rate_limited("customer_login"), name="dispatch")
class PasswordResetView(auth_views.PasswordResetView):
    """Always says the same thing, whether or not the address has an account (no account discovery)."""

    template_name = FORM_PAGE
    subject_template_name = "emails/password_reset.subject.txt"
    email_template_name = "emails/password_reset.txt"
    html_email_template_name = "emails/password_reset.html"
    success_url = reverse_lazy("accounts:password_reset_done")
    extra_context = {
        "title": "Reset your password",
        "intro": "Enter the e-mail address of your account; we send a link to choose a new password.",
        "button": "Send the link",
    }


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = FORM_PAGE
    extra_context = {
        "title": "Check your e-mail",
        "intro": "If an account uses that address, a link to reset its password is on its way. It works for 3 days.",
    }


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = FORM_PAGE
    success_url = reverse_lazy("accounts:password_reset_complete")
    extra_context = {"title": "Choose a new password", "button": "Save the new password"}


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = FORM_PAGE
    extra_context = {"title": "Password changed", "intro": "Your new password works now.", "sign_in": True}


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = FORM_PAGE
    success_url = reverse_lazy("accounts:password_change_done")
    extra_context = {"title": "Change your password", "button": "Change the password"}

    def form_valid(self, form):
        response = super().form_valid(form)
        audit_record(event="password_changed", request=self.request, actor=self.request.user)
        return response


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = FORM_PAGE
    extra_context = {"title": "Password changed", "intro": "Your new password works from now on."}


@login_required
def email_change_view(request):
    form = EmailChangeForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            email_change_request(
                user=request.user,
                new_email=form.cleaned_data["new_email"],
                confirm_url_base=request.build_absolute_uri(reverse("accounts:email_change")) + "confirm",
            )
        except EmailChangeRefused as exc:
            form.add_error("new_email", str(exc))
        else:
            messages.success(request, "We sent a link to the new address. Your address changes when you open it.")
            return redirect("accounts:home")
    return render(
        request, FORM_PAGE, {"form": form, "title": "Change your e-mail address", "button": "Send the confirmation"}
    )


def email_change_confirm_view(request, token: str):
    try:
        user = email_change_confirm(token=token)
    except EmailChangeRefused as exc:
        return render(request, FORM_PAGE, {"title": "E-mail address not changed", "intro": str(exc)}, status=400)
    return render(
        request, FORM_PAGE, {"title": "E-mail address changed", "intro": f"You sign in with {user.email} now."}
    )


@never_cache  # the recovery codes are on this page: no cache, browser or proxy, may keep a copy
@login_required
def two_factor_view(request):
    """Turn two-factor sign-in on (scan, type a code, keep the recovery codes), move it to a new app, or turn
    it off. The sign-in gate lets a session here only once it has passed its second factor, if it has one."""
    staff_must_keep = request.user.is_staff and settings.STAFF_TWO_FACTOR_REQUIRED
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}) or not next_url:
        next_url = f"/{settings.ADMIN_URL}" if request.user.is_staff else reverse("accounts:home")
    context = {"enabled": two_factor.is_enabled(request.user), "staff_must_keep": staff_must_keep, "next": next_url}
    action = request.POST.get("action") if request.method == "POST" else None
    token = request.POST.get("token", "")
    try:
        if action == "start":
            two_factor.setup_start(request=request, token=token)
            return redirect(request.get_full_path())
        if action == "confirm":
            codes = two_factor.setup_confirm(request=request, token=token)
            return render(request, "accounts/two_factor.html", {**context, "enabled": True, "recovery_codes": codes})
        if action == "disable":
            two_factor.disable(request=request, token=token, password=request.POST.get("password", ""))
            messages.success(request, "Two-factor sign-in is off.")
            return redirect("accounts:two_factor")
    except TwoFactorRefused as exc:
        messages.error(request, str(exc))
    pending = two_factor.setup_pending(user=request.user)
    if pending is not None:
        uri = two_factor.provisioning_uri(pending)
        context.update(pending=True, qr_svg=two_factor.qr_svg(uri), secret=uri.split("secret=")[1].split("&")[0])
    return render(request, "accounts/two_factor.html", context)


@never_cache
@login_required
@rate_limited("customer_login")
def second_factor_view(request):
    """The code page after the password, for everyone with a confirmed device."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("accounts:home")
    if request.method == "POST":
        try:
            two_factor.verify(request=request, token=request.POST.get("token", ""))
        except TwoFactorRefused as exc:
            messages.error(request, str(exc))
        else:
            return redirect(next_url)
    return render(request, "accounts/second_factor.html", {"next": next_url})
