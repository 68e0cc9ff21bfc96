"""The platform's SMTP relay for the stores' outbound mail (STORE_SMTP_*, STORE_MAIL_FROM), read and checked
once at start-up: a bad value stops the platform with the variable's name instead of leaving every store
unable to send (README, "Store mail").

No Django import beyond the exception: settings/base.py calls this before Django is configured.
"""

import ipaddress
import re
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

# STORE_SMTP_SECURITY: how the stores talk to the relay. `starttls` upgrades a plain connection (port 587),
# `tls` is TLS from the first byte (SMTPS, port 465), `none` sends everything, credentials too, in clear
# (only for a relay on the same private network).
SMTP_SECURITY_PORTS = {"none": 25, "starttls": 587, "tls": 465}
HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
MAIL_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?P<domain>[A-Za-z0-9.-]{1,253})")
VARIABLES = ("STORE_SMTP_HOST", "STORE_SMTP_PORT", "STORE_SMTP_USER", "STORE_SMTP_PASSWORD", "STORE_SMTP_SECURITY")


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return HOSTNAME.fullmatch(value) is not None


def mail_address_is_valid(value: str) -> bool:
    match = MAIL_ADDRESS.fullmatch(value)
    return match is not None and _is_host(match["domain"]) and "." in match["domain"]


def store_smtp_settings(environ: Mapping[str, str]) -> dict[str, object]:
    """The STORE_SMTP_* and STORE_MAIL_FROM settings from `environ`; ImproperlyConfigured, naming the variable,
    for any value the stores could not use. An empty STORE_SMTP_HOST means no relay: stores send no mail."""
    value = {name: environ.get(name, "").strip() for name in (*VARIABLES, "STORE_MAIL_FROM")}
    value["STORE_SMTP_PASSWORD"] = environ.get("STORE_SMTP_PASSWORD", "")  # whole: spaces may be part of it
    for name in ("STORE_SMTP_USER", "STORE_SMTP_PASSWORD"):
        # The mu-plugin and Magento read these whole; a line break would end up in the SMTP dialogue.
        if any(character in environ.get(name, "") for character in "\r\n\0"):
            raise ImproperlyConfigured(f"{name} must be one line")
    security = value["STORE_SMTP_SECURITY"].lower() or "starttls"
    if security not in SMTP_SECURITY_PORTS:
        choices = ", ".join(SMTP_SECURITY_PORTS)
        raise ImproperlyConfigured(
            f"STORE_SMTP_SECURITY must be one of {choices} (got {value['STORE_SMTP_SECURITY']!r})"
        )
    port_text = value["STORE_SMTP_PORT"]
    if port_text and not (port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise ImproperlyConfigured(f"STORE_SMTP_PORT must be a port number from 1 to 65535 (got {port_text!r})")
    host = value["STORE_SMTP_HOST"]
    if not host:
        # (STORE_SMTP_SECURITY alone is no sign of a forgotten host: it has a default, and .env.example sets it.)
        others = [
            name
            for name in ("STORE_SMTP_PORT", "STORE_SMTP_USER", "STORE_SMTP_PASSWORD", "STORE_MAIL_FROM")
            if value[name]
        ]
        if others:
            raise ImproperlyConfigured(f"{', '.join(others)} set but STORE_SMTP_HOST is empty: name the relay")
    elif not _is_host(host):
        raise ImproperlyConfigured(f"STORE_SMTP_HOST must be a host name or an IP address (got {host!r})")
    if bool(value["STORE_SMTP_USER"]) != bool(value["STORE_SMTP_PASSWORD"]):
        raise ImproperlyConfigured("STORE_SMTP_USER and STORE_SMTP_PASSWORD go together: set both, or neither")
    if value["STORE_MAIL_FROM"] and not mail_address_is_valid(value["STORE_MAIL_FROM"]):
        raise ImproperlyConfigured(
            f"STORE_MAIL_FROM must be one e-mail address such as mail@example.com (got {value['STORE_MAIL_FROM']!r})"
        )
    return {
        "STORE_SMTP_HOST": host,
        "STORE_SMTP_PORT": int(port_text) if port_text else SMTP_SECURITY_PORTS[security],
        "STORE_SMTP_SECURITY": security,
        "STORE_SMTP_USER": value["STORE_SMTP_USER"],
        "STORE_SMTP_PASSWORD": value["STORE_SMTP_PASSWORD"],
        "STORE_MAIL_FROM": value["STORE_MAIL_FROM"],
    }
