from django import forms
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError

from accounts.models import User
from stores.domains import domain_normalize
from stores.models import Store, StoreName


class StoreDomainField(forms.CharField):
    """An optional custom domain for a new store: validated and normalised as provisioning does, and not
    served by another store. It reserves nothing: the store page then shows the DNS records that prove it."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 253)
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", "Your own domain (optional)")
        kwargs.setdefault(
            "help_text",
            "For example shop.example.com. Your store works at once on its own address with us; once it is "
            "set up, its page shows the DNS record that proves this domain is yours.",
        )
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        if not (value or "").strip():
            return ""
        domain = domain_normalize(value)
        if Store.objects.filter(live_domain=domain).exists() or StoreName.objects.filter(served_name=domain).exists():
            raise ValidationError("This domain is already in use by another store.")
        return domain


class SignupForm(forms.Form):
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput(render_value=False), strip=False)
    company = forms.CharField(max_length=200)
    domain = StoreDomainField()

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError("An account with this e-mail already exists. Sign in to add a plan.")
        return email

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password"):
            candidate = User(email=cleaned.get("email") or "", company=cleaned.get("company") or "")
            try:
                password_validation.validate_password(cleaned["password"], candidate)
            except ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class PlanSignupForm(forms.Form):
    """A signed-in customer buying another plan: only the new store's domain."""

    domain = StoreDomainField()


class StoreAddForm(forms.Form):
    domain = StoreDomainField()
    site_title = forms.CharField(max_length=200, required=False, label="Store name")


class AccountCloseForm(forms.Form):
    """The customer closes their own account: the password again, and a tick that they read what happens."""

    password = forms.CharField(
        label="Your password", widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}), strip=False
    )
    understood = forms.BooleanField(
        label="I understand that my stores will be removed and that this cannot be undone.", required=True
    )
