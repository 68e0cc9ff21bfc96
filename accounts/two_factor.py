"""Two-factor sign-in: a TOTP authenticator app, plus ten single-use recovery codes. Optional for customers,
required for staff when STAFF_TWO_FACTOR_REQUIRED. Devices are django-otp's models; these functions are the
only writers.

Every code a person types goes through `_code_attempt`: failures are audited and counted against a budget per
account (shophosting.core.ratelimits.FAILURE_LIMITS), which no new session, device or `setup_start` resets.
Replacing or removing a confirmed device needs a verified session and a current code."""

import io
from base64 import b32encode
from collections.abc import Callable
from urllib.parse import quote

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django_otp import login as otp_login
from django_otp import match_token, user_has_device
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.exceptions import TwoFactorRefused
from accounts.models import User
from accounts.services import audit_record
from shophosting.core.ratelimits import failure_count, failures_exhausted

RECOVERY_CODES = 10
CODE_BUDGET = "two_factor_code"
WRONG_CODE = "That code is not right. Use the newest code from your app, or a recovery code."
NOT_VERIFIED = "Sign in with your current code first."


def is_enabled(user: User) -> bool:
    return user_has_device(user, confirmed=True)


def _clean(token: str) -> str:
    return (token or "").strip().replace(" ", "")


def _code_attempt(request, *, step: str, check: Callable[[], Device | bool | None], wrong: str = WRONG_CODE):
    """Run one code check within the account's failure budget; audit and count it when it fails."""
    user = request.user
    key = f"user:{user.pk}"
    with transaction.atomic():
        # One code check per account at a time: parallel requests would otherwise each pass the budget check
        # before any of them counted its failure, and get more guesses than the budget allows.
        User.objects.select_for_update().only("pk").get(pk=user.pk)
        wait = failures_exhausted(group=CODE_BUDGET, key=key)
        device = check() if wait is None else None
        if wait is None and device is None:
            failure_count(group=CODE_BUDGET, key=key)
    # Audited after the commit, so a refusal (raised below) never rolls its audit row back.
    if wait is not None:
        audit_record(event="two_factor_failed", request=request, actor=user, step=step, throttled=True)
        raise TwoFactorRefused(f"Too many wrong codes. Try again in {max(1, round(wait / 60))} minutes.")
    if device is None:
        audit_record(event="two_factor_failed", request=request, actor=user, step=step)
        raise TwoFactorRefused(wrong)
    return device


def _current_code(request, *, token: str, step: str) -> Device:
    """Changing a confirmed set-up: the session must have passed the second factor, and give a code again."""
    if not request.user.is_verified():
        audit_record(event="two_factor_failed", request=request, actor=request.user, step=step, verified=False)
        raise TwoFactorRefused(NOT_VERIFIED)
    return _code_attempt(request, step=step, check=lambda: match_token(request.user, _clean(token)))


def setup_start(*, request, token: str = "") -> TOTPDevice:
    """A fresh, unconfirmed authenticator device (any earlier unconfirmed one is replaced). Replacing a
    confirmed app needs a verified session and a current code; the old app works until the new one is confirmed."""
    user = request.user
    if is_enabled(user):
        _current_code(request, token=token, step="replace")
    with transaction.atomic():
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


def setup_confirm(*, request, token: str) -> list[str]:
    """Turn two-factor on (or move it to a new app) when the new app's code matches; returns the recovery
    codes, shown once. A first device may be confirmed by a password-only session (staff enrolling), so the
    code counts against the failure budget like any other."""
    user = request.user
    replacing = is_enabled(user)
    if replacing and not user.is_verified():
        audit_record(event="two_factor_failed", request=request, actor=user, step="confirm", verified=False)
        raise TwoFactorRefused(NOT_VERIFIED)
    pending = setup_pending(user=user)
    if pending is None:
        raise TwoFactorRefused("Start the set-up again: there is no new app waiting for its first code.")
    _code_attempt(
        request,
        step="confirm",
        check=lambda: pending if pending.verify_token(_clean(token)) else None,
        wrong="That code did not match. Check the time on your phone and try the newest code.",
    )
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(pk=pending.pk, confirmed=False).first()
        # Re-checked under the lock: a device confirmed meanwhile by another session is never replaced by an
        # unverified one, and a concurrent confirm of the same device wins once.
        if device is None or (is_enabled(user) and not user.is_verified()):
            raise TwoFactorRefused("Start the set-up again: it changed in another window.")
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        StaticDevice.objects.filter(user=user).delete()
        recovery = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
        StaticToken.objects.bulk_create(StaticToken(device=recovery, token=code) for code in codes)
    otp_login(request, device)  # this session proved the (new) second factor just now
    audit_record(event="two_factor_replaced" if replacing else "two_factor_enabled", request=request, actor=user)
    return codes


def disable(*, request, token: str, password: str) -> None:
    """Turn two-factor off: a verified session, the password and a current code. Staff keep it when required."""
    user = request.user
    if user.is_staff and settings.STAFF_TWO_FACTOR_REQUIRED:
        raise TwoFactorRefused("Staff accounts keep two-factor sign-in on.")
    # A wrong password spends the same failure budget as a wrong code: a stolen verified session must not
    # become an unlimited password oracle that django-axes never sees.
    _code_attempt(
        request,
        step="disable_password",
        check=lambda: True if user.check_password(password) else None,
        wrong="That is not your password; two-factor sign-in stays on.",
    )
    _current_code(request, token=token, step="disable")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
    audit_record(event="two_factor_disabled", request=request, actor=user)


def verify(*, request, token: str) -> None:
    """Check an authenticator code or a recovery code (used up) and mark this session verified."""
    device = _code_attempt(request, step="sign_in", check=lambda: match_token(request.user, _clean(token)))
    otp_login(request, device)
    kind = "recovery_code" if isinstance(device, StaticDevice) else "authenticator"
    audit_record(event="two_factor_passed", request=request, actor=request.user, method=kind)
