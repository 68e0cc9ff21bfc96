from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models

from shophosting.core.transitions import StatusEvent


def email_normalise(email: str) -> str:
    """An address as accounts store it, and as sign-in, lockouts and look-ups compare it: trimmed, lower-cased."""
    return BaseUserManager.normalize_email((email or "").strip()).lower()


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=email_normalise(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        if not extra_fields["is_staff"] or not extra_fields["is_superuser"]:
            raise ValueError("A superuser needs is_staff=True and is_superuser=True")
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, username):
        # E-mail addresses are stored lower-cased; sign-in accepts any case.
        return self.get(**{f"{self.model.USERNAME_FIELD}__iexact": username})


class User(AbstractUser):
    """A customer (merchant) or a staff member. The e-mail address is the login."""

    username = None
    email = models.EmailField("e-mail address", unique=True)
    company = models.CharField(max_length=200, blank=True)
    must_change_password = models.BooleanField(
        default=False, help_text="Set with a temporary password: the admin is closed to them until they change it."
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.email

    def set_password(self, raw_password):
        # Any new password the user sets ends a temporary one; staff_password_reset sets the flag again after.
        super().set_password(raw_password)
        self.must_change_password = False


class AuditEvent(models.Model):
    """A security-relevant event. Written only by accounts.services.audit_record, never edited."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    event = models.CharField(max_length=64, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    # Kept as text too, so the trail survives the deletion of the user.
    actor_email = models.CharField(max_length=254, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    path = models.CharField(max_length=500, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["event", "created_at"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event} {self.actor_email}".strip()


class StaffUserManager(UserManager):
    def get_queryset(self):
        return super().get_queryset().filter(is_staff=True)


class CustomerManager(UserManager):
    def get_queryset(self):
        return super().get_queryset().filter(is_staff=False)


class StaffUser(User):
    """Staff accounts, as the admin shows them: only super admins manage them (accounts.staff services)."""

    objects = StaffUserManager()

    class Meta:
        proxy = True
        verbose_name = "admin user"
        ordering = ["email"]


class Customer(User):
    """Merchants, as the admin shows them; their stores and subscriptions hang off the User row."""

    objects = CustomerManager()

    class Meta:
        proxy = True
        ordering = ["email"]


class AccountClosure(models.Model):
    """A customer's account on its way out: closing (subscriptions canceled, stores being backed up and torn
    down; sign-in already refused) → closed (every store gone; the final backups kept until `purge_after`)
    → purged (personal data removed, audit rows redacted). `status` is written only by
    accounts.closure.closure_transition, with an AccountClosureEvent (accounts/README.md, "Leaving")."""

    class Status(models.TextChoices):
        CLOSING = "closing", "Closing: stores being backed up and torn down"
        CLOSED = "closed", "Closed: final backups kept for the retention period"
        PURGED = "purged", "Purged: personal data removed"

    class Via(models.TextChoices):
        CUSTOMER = "customer", "The customer, from their account page"
        STAFF = "staff", "Staff, at the customer's request"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="closure")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CLOSING, db_index=True)
    via = models.CharField(max_length=10, choices=Via.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The retention stated to the customer when they asked; the purge keeps to it even if settings change.
    retention_days = models.PositiveSmallIntegerField()
    requested_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    purge_after = models.DateTimeField(null=True, blank=True, db_index=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-requested_at"]
        permissions = [("close_customer_account", "Can close a customer's account (at their request)")]

    def __str__(self):
        return f"account {self.user_id}: {self.get_status_display()}"


class AccountClosureEvent(StatusEvent):
    closure = models.ForeignKey(AccountClosure, on_delete=models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=20, choices=AccountClosure.Status.choices, blank=True)
    new_status = models.CharField(max_length=20, choices=AccountClosure.Status.choices)
