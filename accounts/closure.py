"""The account's own side of leaving: the AccountClosure record and its status, refusing sign-in, and at the
purge, the customer row anonymised and the audit trail redacted. What closing does to subscriptions, stores
and backups is billing's (billing/services/closure.py), which sits above every app it drives; this module
knows only accounts' own tables (accounts/README.md, "Leaving")."""

from datetime import datetime

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.db import transaction
from django.db.models import Q
from django_otp import devices_for_user

from accounts.models import AccountClosure, AccountClosureEvent, AuditEvent, User
from accounts.services import audit_record
from shophosting.core.transitions import InvalidTransition, transition

CS = AccountClosure.Status
# to-status -> the statuses it may be reached from. A closure never goes back: a closed account is not
# reopened (the customer signs up again, with a new account).
CLOSURE_ALLOWED_FROM: dict[str, set[str]] = {
    CS.CLOSED: {CS.CLOSING},
    CS.PURGED: {CS.CLOSED},
}
CLOSE_PERMISSION = "accounts.close_customer_account"


class AccountClosureRefused(Exception):
    """Closing was refused and nothing changed; the message is fit to show to the person who asked."""


class ClosurePasswordWrong(AccountClosureRefused):
    """The customer's re-entered password did not match."""


def closed_account_placeholder(user_id: int) -> str:
    """What stands in for the customer's e-mail address, name, company and IP addresses once purged."""
    return f"closed-account-{user_id}"


def closure_transition(*, closure_id: int, to: str, actor: User | None = None, note: str = "", **fields):
    """The only code that writes AccountClosure.status (row lock, allowed edge, an AccountClosureEvent)."""
    return transition(
        AccountClosure,
        closure_id,
        to,
        allowed_from=CLOSURE_ALLOWED_FROM,
        event_model=AccountClosureEvent,
        event_link="closure",
        actor=actor,
        note=note,
        **fields,
    )


def closure_open(
    *, user_id: int, actor: User | None, via: str, retention_days: int, reason: str = "", request=None
) -> AccountClosure:
    """Start closing an account: an AccountClosure in `closing`, and sign-in refused from now on (the user is
    inactive, so Django's ModelBackend also ends every open session at its next request). Refuses a staff
    account and an account already closing or closed. Call it inside the transaction that starts the rest."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        if user.is_staff:
            raise AccountClosureRefused("Staff accounts are not closed here; deactivate them under Admin users.")
        existing = AccountClosure.objects.filter(user=user).first()
        if existing is not None:
            raise AccountClosureRefused(
                f"This account is already {existing.get_status_display().split(':')[0].lower()}; nothing was changed."
            )
        closure = AccountClosure.objects.create(user=user, via=via, requested_by=actor, retention_days=retention_days)
        AccountClosureEvent.objects.create(
            closure=closure, new_status=closure.status, actor=actor, note=f"closing requested ({via}) {reason}".strip()
        )
        user.is_active = False
        user.save(update_fields=["is_active"])
        audit_record(
            event="account_closing",
            request=request,
            actor=actor,
            customer=user.pk,
            user=user.email,
            via=via,
            retention_days=retention_days,
            reason=reason,
        )
    return closure


def closure_mark_closed(*, closure_id: int, now: datetime, purge_after: datetime) -> AccountClosure:
    """Every store is gone: the account is closed, and its final backups are kept until `purge_after`."""
    closure = closure_transition(
        closure_id=closure_id,
        to=CS.CLOSED,
        note=f"every store torn down; purge after {purge_after:%Y-%m-%d}",
        closed_at=now,
        purge_after=purge_after,
    )
    audit_record(event="account_closed", customer=closure.user_id, purge_after=purge_after.isoformat())
    return closure


def account_personal_data_erase(*, closure_id: int, now: datetime) -> AccountClosure:
    """The last step of the purge (billing removed the rest first): the audit rows about the customer are
    redacted, their sign-in traces (django-axes, two-factor devices) deleted, and the User row anonymised.
    The row itself stays, so the records that must outlive the customer (invoices, audit rows, store
    events) still point at something; it holds nothing that identifies them."""
    with transaction.atomic():
        closure = AccountClosure.objects.select_for_update().get(pk=closure_id)
        if closure.status != CS.CLOSED:
            raise InvalidTransition(f"account {closure.user_id} is {closure.status}; only a closed account is purged")
        user = User.objects.select_for_update().get(pk=closure.user_id)
        audit_rows_redact(user=user)
        for attempts in (AccessAttempt, AccessLog, AccessFailureLog):
            attempts.objects.filter(username__iexact=user.email).delete()
        for device in devices_for_user(user, confirmed=None):
            device.delete()
        placeholder = closed_account_placeholder(user.pk)
        user.email = f"{placeholder}@closed.invalid"
        user.first_name = user.last_name = user.company = ""
        user.is_active = False
        user.set_unusable_password()
        user.save(update_fields=["email", "first_name", "last_name", "company", "is_active", "password"])
        closure = closure_transition(closure_id=closure.pk, to=CS.PURGED, note="personal data removed", purged_at=now)
        # Recorded after the redaction, so this row names the account by its placeholder only.
        audit_record(event="account_purged", customer=user.pk, user=placeholder)
    return closure


def audit_rows_redact(*, user: User) -> int:
    """Keep every audit row about the customer, with their personal data replaced by the placeholder: the
    e-mail address (as actor or anywhere in the detail), their name and company, and the IP addresses they
    signed in from (the column is emptied; a value in the detail becomes the placeholder). Rows staff wrote
    about them keep the staff member's own address and IP. Returns the number of rows changed."""
    placeholder = closed_account_placeholder(user.pk)
    email = user.email.lower()
    own = Q(actor=user) | Q(actor_email__iexact=email)
    mentions = Q(detail__icontains=email)
    # Their full name and company name identify them too; a first name alone is too common to search for.
    for identifying in (user.get_full_name(), user.company):
        if len(identifying) >= 6:
            mentions |= Q(detail__icontains=identifying)
    rows = list(AuditEvent.objects.filter(own | mentions).select_for_update())
    # Their own rows (their sign-ins, their failed attempts named by their address) carry their IPs.
    own_ids = set(AuditEvent.objects.filter(own).values_list("pk", flat=True))
    own_ids |= {row.pk for row in rows if str(row.detail.get("username", "")).lower() == email}
    ips = {row.ip_address for row in rows if row.pk in own_ids and row.ip_address}
    names = [
        value for value in (user.get_full_name(), user.first_name, user.last_name, user.company) if len(value) >= 3
    ]
    needles = [email, *sorted(names, key=len, reverse=True), *ips]

    def scrub(value):
        if isinstance(value, str):
            for needle in needles:
                if needle.lower() in value.lower():
                    value = _replace_insensitive(value, needle, placeholder)
            return value
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [scrub(item) for item in value]
        return value

    for row in rows:
        if row.pk in own_ids or row.actor_email.lower() == email:
            row.actor_email = placeholder
        if row.pk in own_ids:
            row.ip_address = None
        row.detail = {**scrub(row.detail), "redacted": placeholder}
        row.save(update_fields=["actor_email", "ip_address", "detail"])
    return len(rows)


def _replace_insensitive(text: str, needle: str, replacement: str) -> str:
    lowered, target, start, parts = text.lower(), needle.lower(), 0, []
    while (found := lowered.find(target, start)) != -1:
        parts += [text[start:found], replacement]
        start = found + len(target)
    return "".join([*parts, text[start:]])
