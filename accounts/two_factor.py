"""Optional two-factor sign-in for customers: a TOTP authenticator app, plus ten single-use recovery codes.
Devices are django-otp's models; these functions are the only writers."""

import io
from base64 import b32encode
from urllib.parse import quote

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django_otp import login as otp_login
from django_otp import match_token, user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from accounts.services import audit_record

RECOVERY_CODES = 10


def is_enabled(user: User) -> bool:
    return user_has_device(user, confirmed=True)


@transaction.atomic
def setup_start(*, user: User) -> TOTPDevice:
    """A fresh, unconfirmed authenticator device (any earlier unconfirmed one is replaced)."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def setup_pending(*, user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).first()


def provisioning_uri(device: TOTPDevice) -> str:
    secret = b32encode(device.bin_key).decode().rstrip("=")
    issuer = quote(settings.OTP_TOTP_ISSUER)
    return f"otpauth://totp/{issuer}:{quote(device.user.email)}?secret={secret}&issuer={issuer}&digits={device.digits}"


def qr_svg(uri: str) -> str:
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


def setup_confirm(*, user: User, token: str, request=None) -> list[str] | None:
    """Turn two-factor on when the app's code matches; returns the recovery codes (shown once), else None."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
        if device is None or not device.verify_token(token.strip().replace(" ", "")):
            return None
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        StaticDevice.objects.filter(user=user).delete()
        recovery = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
        StaticToken.objects.bulk_create(StaticToken(device=recovery, token=code) for code in codes)
    if request is not None:
        otp_login(request, device)  # this session proved the second factor just now
    audit_record(event="two_factor_enabled", request=request, actor=user)
    return codes


@transaction.atomic
def disable(*, user: User, request=None) -> None:
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    audit_record(event="two_factor_disabled", request=request, actor=user)


def verify(*, request, token: str) -> bool:
    """Check an authenticator code or a recovery code (used up) and mark this session verified."""
    device = match_token(request.user, token.strip().replace(" ", ""))
    if device is None:
        audit_record(event="two_factor_failed", request=request, actor=request.user)
        return False
    otp_login(request, device)
    kind = "recovery_code" if isinstance(device, StaticDevice) else "authenticator"
    audit_record(event="two_factor_passed", request=request, actor=request.user, method=kind)
    return True
