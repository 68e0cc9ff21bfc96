"""Signal receivers that turn authentication events into audit events."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts.services import audit_record


@receiver(user_logged_in)
def _audit_login(sender, request, user, **kwargs):
    audit_record(event="login_success", request=request, actor=user, staff=user.is_staff)


@receiver(user_login_failed)
def _audit_login_failed(sender, credentials, request=None, **kwargs):
    # credentials holds the password too; only the username is kept. `reason` comes from our own senders
    # (a staff account at the customer login); Django's own failures carry none.
    detail = {"reason": kwargs["reason"]} if kwargs.get("reason") else {}
    audit_record(event="login_failed", request=request, username=(credentials or {}).get("username", ""), **detail)


@receiver(user_logged_out)
def _audit_logout(sender, request, user, **kwargs):
    if user is not None:
        audit_record(event="logout", request=request, actor=user)


@receiver(user_locked_out)
def _audit_lockout(sender, request, username=None, ip_address=None, **kwargs):
    audit_record(event="lockout", request=request, username=username or "")
