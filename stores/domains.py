"""Store domain validation: what a merchant types becomes a normalised ASCII host name, or a clear error."""

import ipaddress
import re

import idna
from django.conf import settings
from django.core.exceptions import ValidationError

# Used with fullmatch: `$` alone would also match before a trailing line break.
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def domain_normalize(value: str) -> str:
    """Lower-case, IDN to punycode, then RFC 1123 checks. Raises ValidationError with a reason."""
    domain = (value or "").strip().lower().rstrip(".")
    if not domain:
        raise ValidationError("Enter your store's domain, for example shop.example.com.")
    if not domain.isprintable():
        raise ValidationError("A domain cannot contain line breaks, tabs or other control characters.")
    if "*" in domain:
        raise ValidationError("Wildcard domains are not supported; enter one exact domain.")
    if "/" in domain or (":" in domain and not _is_ip(domain)):
        raise ValidationError("Enter only the domain name, without http://, a path or a port.")
    if _is_ip(domain):
        raise ValidationError("Enter a domain name, not an IP address.")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValidationError(f"“{value.strip()}” is not a valid domain name ({exc}).") from exc
    if len(domain) > 253:
        raise ValidationError("A domain name can be at most 253 characters long.")
    labels = domain.split(".")
    if len(labels) < 2:
        raise ValidationError("Enter a full domain with a dot, for example shop.example.com.")
    for label in labels:
        if len(label) > 63:
            raise ValidationError(f"“{label}” is longer than the 63 characters a domain label may have.")
        if not LABEL.fullmatch(label):
            raise ValidationError(
                f"“{label}” is not a valid part of a domain: use letters, digits and hyphens, "
                "not starting or ending with a hyphen."
            )
    if labels[-1].isdigit():
        raise ValidationError("The last part of a domain cannot be only digits.")
    platform = settings.PLATFORM_DOMAIN.lower()
    if domain == platform or domain.endswith(f".{platform}"):
        raise ValidationError(f"{platform} belongs to the platform; use your own domain.")
    return domain


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


# A platform label is at most this long, leaving room for "-<store id>" within the 63 of a DNS label.
PLATFORM_LABEL_BASE_MAX = 40


def platform_label_base(title: str) -> str:
    """A DNS label from a store's title: ASCII letters and digits (accents folded), hyphens between words,
    at most PLATFORM_LABEL_BASE_MAX characters; "store" when nothing is left (a title in another script)."""
    import unicodedata

    folded = unicodedata.normalize("NFKD", title or "").encode("ascii", "ignore").decode("ascii").lower()
    label = re.sub(r"[^a-z0-9]+", "-", folded.replace("'", "")).strip("-")[:PLATFORM_LABEL_BASE_MAX].strip("-")
    return label or "store"


def platform_label_refusal(label: str) -> str | None:
    """Why `label` cannot name a store under PLATFORM_DOMAIN, in plain words; None when it can."""
    if not label:
        return "A platform name needs at least one letter or digit."
    if len(label) > 63:
        return f"“{label}” is longer than the 63 characters a domain label may have."
    if not LABEL.fullmatch(label):
        return (
            f"“{label}” is not a valid platform name: use lower-case letters, digits and hyphens, "
            "not starting or ending with a hyphen."
        )
    if "--" in label[2:4]:
        return f"“{label}” looks like an encoded international name (two hyphens at the third place)."
    if label in platform_reserved_labels():
        return f"“{label}” is one of the platform's own host names."
    return None


def platform_reserved_labels() -> frozenset[str]:
    """PLATFORM_RESERVED_LABELS, and the first label of every one of the platform's own hosts under
    PLATFORM_DOMAIN (ALLOWED_HOSTS, SITE_URL): a store never takes a name the platform serves itself."""
    from urllib.parse import urlsplit

    platform = settings.PLATFORM_DOMAIN.lower()
    own = [*settings.ALLOWED_HOSTS, urlsplit(settings.SITE_URL).hostname or ""]
    labels = {
        host.lower().lstrip(".").removesuffix(f".{platform}") for host in own if host.lower().endswith(f".{platform}")
    }
    return frozenset(
        {label.split(".")[-1] for label in labels} | {x.lower() for x in settings.PLATFORM_RESERVED_LABELS}
    )


def platform_name(label: str) -> str:
    """`label` under PLATFORM_DOMAIN, or ValidationError with the reason."""
    refusal = platform_label_refusal(label)
    if refusal:
        raise ValidationError(refusal)
    name = f"{label}.{settings.PLATFORM_DOMAIN.lower()}"
    if len(name) > 253:
        raise ValidationError("A domain name can be at most 253 characters long.")
    return name
