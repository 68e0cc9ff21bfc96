"""Encryption at rest for store credentials: MultiFernet keyed by CREDENTIALS_KEY.

CREDENTIALS_KEY holds one or more Fernet keys, comma separated, newest first. New tokens use the first
key; every key can decrypt, so a key is rotated by putting the new one first and running
`manage.py credentials_rotate`, then removing the old key.
"""

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> MultiFernet:
    keys = [key.strip() for key in settings.CREDENTIALS_KEY.split(",") if key.strip()]
    if not keys:
        raise ImproperlyConfigured("CREDENTIALS_KEY is empty: store credentials cannot be encrypted")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured("CREDENTIALS_KEY holds a key that is not a valid Fernet key") from exc


def encrypt(data: dict[str, str]) -> str:
    return _fernet().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise ImproperlyConfigured("store credentials cannot be decrypted with any CREDENTIALS_KEY") from exc


def rotate(token: str) -> str:
    return _fernet().rotate(token.encode()).decode() if token else token
