import json
import logging
import secrets
from ipaddress import ip_address

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import AuditEvent, User
from accounts.roles import Role
from shophosting.client_ip import client_ip

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
def customer_create(*, email: str, password: str, company: str = "", first_name: str = "", last_name: str = "") -> User:
    return User.objects.create_user(
        email=email, password=password, company=company, first_name=first_name, last_name=last_name
    )
