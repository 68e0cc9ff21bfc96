import json
import logging
import secrets
from ipaddress import ip_address

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import AccountClosure, AuditEvent, User
from accounts.roles import Role
from shophosting.core.client_ip import client_ip
from shophosting.core.emails import email_send

logger = logging.getLogger(__name__)

security_log = logging.getLogger("shophosting.security")

# Never copied into the audit trail, whatever a caller passes.
SECRET_KEYS = {"password", "password1", "password2", "token", "secret", "credentials"}


def audit_record(*, event: str, request: HttpRequest | None = None, actor: User | None = None, **detail) -> AuditEvent:
    """Write one security event twice: a row in AuditEvent and one JSON line in security.log."""
    detail = {key: value for key, value in detail.items() if key not in SECRET_KEYS}
    if actor is None and request is not None and getattr(request, "user", None) is not None:
        actor = request.user if request.user.is_authenticated else None
    ip = client_ip(request) if request is not None else None
    try:
        ip_address(ip or "")
    except ValueError:
        ip = None
    row = AuditEvent.objects.create(
        event=event,
        actor=actor if actor is not None and actor.pk else None,
        actor_email=getattr(actor, "email", "") or detail.get("username", "") or "",
        ip_address=ip,
        path=(request.path[:500] if request is not None else ""),
        detail=detail,
    )
    security_log.info(
        json.dumps(
            {
                "time": timezone.now().isoformat(),
                "event": event,
                "actor": row.actor_email or None,
                "ip": ip,
                "path": row.path or None,
                **detail,
            },
            default=str,
            sort_keys=True,
        )
    )
    return row


def temporary_password() -> str:
    return secrets.token_urlsafe(12)


@transaction.atomic
def staff_user_ensure(*, email: str, role: Role, password: str | None = None) -> tuple[User, str]:
    """Create or reset a staff user in `role`; returns the user and the password that was set."""
    password = password or temporary_password()
    user, _ = User.objects.get_or_create(email=email.lower(), defaults={"is_staff": True})
    user.is_staff = True
    user.is_superuser = role == Role.SUPER_ADMIN
    user.set_password(password)
    user.save()
    user.groups.set([role.group()])
    return user, password


@transaction.atomic
def customer_create(
    *, email: str, password: str | None, company: str = "", first_name: str = "", last_name: str = ""
) -> User:
    return User.objects.create_user(
        email=email, password=password, company=company, first_name=first_name, last_name=last_name
    )


# A change of e-mail address takes effect only when the new address proves it receives mail.
EMAIL_CHANGE_SALT = "accounts.email-change"
EMAIL_CHANGE_MAX_AGE = 2 * 24 * 3600


class EmailChangeRefused(Exception):
    pass


def email_change_request(*, user: User, new_email: str, confirm_url_base: str) -> None:
    """Send a signed, 2-day link to the new address and a heads-up to the old one; nothing changes yet."""
    from django.core import signing

    new_email = new_email.strip().lower()
    if User.objects.filter(email__iexact=new_email).exists():
        raise EmailChangeRefused("Another account already uses this address.")
    token = signing.dumps({"user": user.pk, "email": new_email, "old": user.email}, salt=EMAIL_CHANGE_SALT)
    link = f"{confirm_url_base.rstrip('/')}/{token}/"
    email_send(template="email_change_confirm", to=[new_email], context={"user": user, "link": link})
    email_send(template="email_change_notice", to=[user.email], context={"user": user, "new_email": new_email})
    audit_record(event="email_change_requested", actor=user, new_email=new_email)


def email_change_confirm(*, token: str) -> User:
    from django.core import signing

    try:
        data = signing.loads(token, salt=EMAIL_CHANGE_SALT, max_age=EMAIL_CHANGE_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise EmailChangeRefused("This link has expired; ask for the change again.") from exc
    except signing.BadSignature as exc:
        raise EmailChangeRefused("This link is not valid.") from exc
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=data["user"]).first()
        if user is None or user.email != data["old"]:
            raise EmailChangeRefused("This link was already used or replaced by a newer one.")
        if User.objects.filter(email__iexact=data["email"]).exclude(pk=user.pk).exists():
            raise EmailChangeRefused("Another account already uses this address.")
        user.email = data["email"]
        user.save(update_fields=["email"])
    audit_record(event="email_changed", actor=user, old_email=data["old"])
    return user


def staff_password_reset(
    *, user: User, actor: User, request=None, why: str = "reset your staff password"
) -> str | None:
    """A 16-character temporary password that must be changed at the next sign-in, e-mailed to the staff
    member. Returns it only when the e-mail could not be sent, so the screen shows it once (and that is audited)."""
    from django.core.mail import send_mail

    _not_own_account(user, actor, "Change your own password from the admin's password page instead.")
    password = temporary_password()
    user.set_password(password)
    user.must_change_password = True
    user.save(update_fields=["password", "must_change_password"])
    try:
        send_mail(
            "Your temporary ShopHosting staff password",
            f"Hello,\n\n{actor.email} {why}. Sign in with this temporary password and choose "
            f"a new one right away:\n\n{password}\n\nShopHosting",
            settings.DEFAULT_FROM_EMAIL,
            [user.email],
        )
    except Exception as exc:  # noqa: BLE001 - any mail failure: the password is shown once instead
        audit_record(event="staff_password_reset", request=request, actor=actor, user=user.email, delivered=False)
        logger.warning("temporary password for %s not e-mailed: %s", user.email, exc)
        return password
    audit_record(event="staff_password_reset", request=request, actor=actor, user=user.email, delivered=True)
    return None


# ---------------------------------------------------------------------------------------------------------
# Staff accounts: only super admins manage them (the admin checks the permission), and nobody changes the
# role, the active flag or the password of their own account here, so no one can lock themselves in or out.
# ---------------------------------------------------------------------------------------------------------


def _not_own_account(user: User, actor: User, message: str) -> None:
    if user.pk == actor.pk:
        raise PermissionError(message)


def staff_role_of(user: User) -> Role | None:
    if user.is_superuser:
        return Role.SUPER_ADMIN
    names = {group.name for group in user.groups.all()}
    return next((role for role in (Role.ADMIN, Role.SUPPORT, Role.EDITOR) if role.value in names), None)


def staff_create(
    *, email: str, role: Role, actor: User, first_name: str = "", last_name: str = "", request=None
) -> tuple[User, str | None]:
    """A new staff account in `role` with a temporary password e-mailed to it (to be changed at the first
    sign-in). Returns the user and the password only when the e-mail failed, to be shown once."""
    with transaction.atomic():
        if User.objects.filter(email__iexact=email).exists():
            raise ValueError("An account with this e-mail address already exists.")
        user = User.objects.create_user(
            email=email,
            password=None,
            first_name=first_name,
            last_name=last_name,
            is_staff=True,
            is_superuser=role == Role.SUPER_ADMIN,
        )
        user.groups.set([role.group()])
        audit_record(event="staff_created", request=request, actor=actor, user=user.email, role=role.value)
    return user, staff_password_reset(user=user, actor=actor, request=request, why="created your staff account")


@transaction.atomic
def staff_role_set(*, user: User, role: Role, actor: User, request=None) -> User:
    _not_own_account(user, actor, "Another super admin must change your role.")
    old = staff_role_of(user)
    if old == role:
        return user
    user.is_superuser = role == Role.SUPER_ADMIN
    user.save(update_fields=["is_superuser"])
    user.groups.set([role.group()])
    audit_record(
        event="staff_role_changed", request=request, actor=actor, user=user.email, old=old and old.value, new=role.value
    )
    return user


@transaction.atomic
def staff_active_set(*, user: User, active: bool, actor: User, request=None) -> User:
    """Deactivate (or reactivate) a staff account: a deactivated one cannot sign in and its sessions stop
    working at their next request. Its audit trail and the records it made stay."""
    _not_own_account(user, actor, "You cannot deactivate your own account.")
    if user.is_active != active:
        user.is_active = active
        user.save(update_fields=["is_active"])
        audit_record(
            event="staff_activated" if active else "staff_deactivated", request=request, actor=actor, user=user.email
        )
    return user


@transaction.atomic
def customer_active_set(*, user: User, active: bool, actor: User, request=None) -> User:
    """Block (or unblock) a customer's sign-in. Their stores keep running: suspending a store is a store action."""
    if user.is_staff:
        raise PermissionError("Staff accounts are managed under Admin users.")
    if active and AccountClosure.objects.filter(user=user).exists():
        # Closing is one way: sign-in stays refused while the stores go, and after.
        raise PermissionError(f"{user.email}'s account is closed or closing; it cannot sign in again.")
    if user.is_active != active:
        user.is_active = active
        user.save(update_fields=["is_active"])
        event = "customer_activated" if active else "customer_deactivated"
        audit_record(event=event, request=request, actor=actor, user=user.email)
    return user
