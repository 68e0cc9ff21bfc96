"""The real client IP behind a configured number of trusted reverse proxies.

Every proxy appends the address it received the request from to X-Forwarded-For, so with N trusted
proxies the client is the N-th entry from the right. Entries further left were written by the
client and can be forged, so they are never used. Without proxies REMOTE_ADDR is the client.
Rate limits and django-axes both key on this, so clients behind nginx never share 127.0.0.1.
"""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote_addr = request.META.get("REMOTE_ADDR", "") or "unknown"
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote_addr
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < proxies:
        # Fewer hops than configured: the request did not come through all trusted proxies.
        return remote_addr
    return forwarded[-proxies]


def client_ip_key(group: str, request: HttpRequest) -> str:
    """django-ratelimit key function."""
    return client_ip(request)
