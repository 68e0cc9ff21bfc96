from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import email_normalise


class LoginForm(AuthenticationForm):
    """The customer sign-in. Staff are refused here and sent to the staff login, with its stricter limits."""

    username = forms.EmailField(
        label="E-mail address", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )

    def clean_username(self):
        # Authentication, the lockout and the audit all see the address as accounts store it.
        return email_normalise(self.cleaned_data["username"])

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if user.is_staff:
            # A failed attempt like a wrong password: django-axes counts it and the audit trail records it.
            # Only someone who typed a staff password right learns where the staff login is.
            user_login_failed.send(
                sender=__name__,
                credentials={"username": self.cleaned_data["username"]},
                request=self.request,
                reason="staff_at_customer_login",
            )
            raise forms.ValidationError(
                format_html(
                    'This sign-in is for customers. Staff accounts sign in at the <a href="{}">staff login</a>.',
                    reverse("staff_login"),
                ),
                code="staff_login",
            )


class EmailChangeForm(forms.Form):
    new_email = forms.EmailField(label="New e-mail address", max_length=254)
    password = forms.CharField(label="Your password", widget=forms.PasswordInput, strip=False)

    def __init__(self, *args, user, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_password(self):
        if not self.user.check_password(self.cleaned_data["password"]):
            raise forms.ValidationError("That is not your current password.")
        return self.cleaned_data["password"]

    def clean_new_email(self):
        email = email_normalise(self.cleaned_data["new_email"])
        if email == self.user.email:
            raise forms.ValidationError("That is already your address.")
        return email
