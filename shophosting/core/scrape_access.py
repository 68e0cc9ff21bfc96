"""Who may read an operator-only endpoint (/metrics): a client address inside a configured network list, or a
request carrying the configured bearer token. Both are read and checked once at start-up (settings/base.py):
a network that does not parse or a token too short to resist guessing stops the platform with the
variable's name, instead of leaving the endpoint open or silently closed.

No Django import beyond the exception and HttpRequest: settings/base.py calls the parsers before Django is
configured.
"""

import hmac
import ipaddress

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from shophosting.core.client_ip import client_ip

# A token shorter than this could be guessed; `openssl rand -hex 32` gives 64 characters.
BEARER_TOKEN_MIN_LENGTH = 32


def networks_from_setting(name: str, values: list[str]) -> list[str]:
    """The networks (CIDR, or single addresses) of a list setting, normalised; ImproperlyConfigured naming the
    variable and the value for anything that is not one. A network with host bits set (10.0.0.5/24) is refused:
    it is either a typo or means 10.0.0.0/24, and the operator should say which."""
    networks = []
    for value in (item.strip() for item in values):
        if not value:
            continue
        try:
            networks.append(str(ipaddress.ip_network(value, strict=True)))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name}: {value!r} is not a network (write it as a CIDR such as 10.0.0.0/24, or one address): {exc}"
            ) from None
    return networks


def bearer_token_from_setting(name: str, value: str) -> str:
    """The token, or "" (no token access); ImproperlyConfigured for one that is short or has spaces."""
    value = value.strip()
    if value and (len(value) < BEARER_TOKEN_MIN_LENGTH or any(char.isspace() for char in value)):
        raise ImproperlyConfigured(
            f"{name} must be at least {BEARER_TOKEN_MIN_LENGTH} characters without spaces "
            "(e.g. `openssl rand -hex 32`), or empty to allow no token"
        )
    return value


def address_in_networks(address: str, networks: list[str]) -> bool:
    """Whether `address` (as client_ip gives it; "unknown" when there is none) lies in one of `networks`."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d; the operator lists the IPv4 network.
    candidates = [ip, ip.ipv4_mapped] if ip.version == 6 and ip.ipv4_mapped else [ip]
    return any(candidate in ipaddress.ip_network(network) for network in networks for candidate in candidates)


def bearer_token_matches(request: HttpRequest, token: str) -> bool:
    """Whether the request sends `Authorization: Bearer <token>`, compared in constant time. Never with an
    empty configured token."""
    if not token:
        return False
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), token.encode())


def scrape_allowed(request: HttpRequest, *, networks: list[str], token: str) -> bool:
    """From an allowed address (the client behind TRUSTED_PROXY_COUNT proxies, never a forged
    X-Forwarded-For entry), or with the token."""
    return bearer_token_matches(request, token) or address_in_networks(client_ip(request), networks)
