"""The only module that talks to the ACME server (Let's Encrypt in production, pebble in tests).

Certificates are issued with http-01: the token is written under NGINX_ACME_WEBROOT, which every store
vhost serves at /.well-known/acme-challenge/. The `acme` library is driven directly: no certbot
subprocess, about a second per certificate.
"""

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings

from provisioning.exceptions import ProvisioningError


class CertificateError(ProvisioningError):
    """Issuance failed (DNS not pointed yet, rate limit, ACME server down); the store stays on HTTP.

    `failed_names` maps each name whose validation the CA refused to the CA's reason; empty when the
    order failed as a whole (the CA unreachable), which says nothing about any one name."""

    def __init__(self, message: str, failed_names: dict[str, str] | None = None):
        super().__init__(message)
        self.failed_names = failed_names or {}


@dataclass(frozen=True)
class Certificate:
    fullchain_path: Path
    key_path: Path


def certificate_paths(domain: str) -> Certificate:
    """Where the store's certificate lives: one directory per store, named by its proxy key (Store.proxy_key,
    `store-<id>`: the certificate covers all of the store's names, which change)."""
    directory = Path(settings.TLS_CERT_DIR) / domain
    return Certificate(fullchain_path=directory / "fullchain.pem", key_path=directory / "privkey.pem")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def _account_key() -> jose.JWKRSA:
    path = Path(settings.ACME_ACCOUNT_KEY_PATH)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_private(
            path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
    return jose.JWKRSA(key=key)


def _client() -> client.ClientV2:
    network = client.ClientNetwork(
        _account_key(), user_agent="shophosting", verify_ssl=settings.ACME_CA_BUNDLE or True, timeout=30
    )
    directory = client.ClientV2.get_directory(settings.ACME_DIRECTORY_URL, network)
    acme = client.ClientV2(directory, net=network)
    registration = messages.NewRegistration.from_data(email=settings.ACME_EMAIL, terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except errors.ConflictError as exc:  # this key already has an account: use it
        network.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
    return acme


def certificate_issue(*, domain: str, names: list[str] | None = None) -> Certificate:
    """Issue (or renew) one certificate for every name in `names` (SANs; default: `domain` alone) and store
    it under TLS_CERT_DIR/<domain>/. The CA validates each name by http-01; when some fail, CertificateError
    names them (failed_names) so the caller can try again without them."""
    names = list(dict.fromkeys(names or [domain]))
    paths = certificate_paths(domain)
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    webroot = Path(settings.NGINX_ACME_WEBROOT) / ".well-known" / "acme-challenge"
    webroot.mkdir(parents=True, exist_ok=True)
    tokens = []
    try:
        acme = _client()
        order = acme.new_order(crypto_util.make_csr(key_pem, names))
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                # The CA reuses a recent validation (Let's Encrypt: 30 days), as on most renewals;
                # answering its challenge again is an error.
                continue
            name = authorization.body.identifier.value
            challenge = next((c for c in authorization.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
            if challenge is None:
                raise CertificateError(f"the ACME server offers no http-01 challenge for {name}", {name: "no http-01"})
            response, validation = challenge.response_and_validation(acme.net.key)
            token = webroot / challenge.chall.encode("token")
            token.write_text(validation)
            token.chmod(0o644)
            tokens.append(token)
            acme.answer_challenge(challenge, response)
        order = acme.poll_and_finalize(order, deadline=datetime.now() + timedelta(seconds=90))
    except errors.ValidationError as exc:
        failed = {authz.body.identifier.value: _authorization_error(authz) for authz in exc.failed_authzrs}
        reasons = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
        raise CertificateError(f"no certificate for {', '.join(names)}: {reasons}", failed) from exc
    except (errors.Error, messages.Error, OSError) as exc:
        raise CertificateError(f"no certificate for {', '.join(names)}: {exc}") from exc
    finally:
        for token in tokens:
            token.unlink(missing_ok=True)
    _write_private(paths.key_path, key_pem)
    paths.fullchain_path.write_text(order.fullchain_pem)
    return paths


def _authorization_error(authorization) -> str:
    """The CA's own words for a failed authorization (its challenge's error), e.g. a DNS failure."""
    for challenge in authorization.body.challenges:
        if challenge.error is not None:
            return str(challenge.error.detail or challenge.error.typ)
    return f"validation {authorization.body.status.name}"


def certificate_names(*, domain: str) -> list[str]:
    """The names (DNS SANs) the stored certificate under TLS_CERT_DIR/<domain>/ covers; [] when there is none."""
    from cryptography import x509

    path = certificate_paths(domain).fullchain_path
    if not path.exists():
        return []
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        return []


def certificate_expires_at(*, domain: str) -> datetime | None:
    """When the stored certificate for `domain` expires (UTC), or None when there is none."""
    from cryptography import x509

    path = certificate_paths(domain).fullchain_path
    if not path.exists():
        return None
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc


def certificate_copy(*, source: str, destination: str) -> bool:
    """Copy a stored certificate from one directory to another that has none (a store from before proxy keys
    kept it under its signup domain). The source stays until its vhost is gone. False when nothing was copied."""
    old, new = certificate_paths(source), certificate_paths(destination)
    if not old.fullchain_path.exists() or not old.key_path.exists() or new.fullchain_path.exists():
        return False
    _write_private(new.key_path, old.key_path.read_bytes())
    new.fullchain_path.write_bytes(old.fullchain_path.read_bytes())
    return True


def certificate_remove(*, domain: str) -> bool:
    """Delete the stored certificate. Remove the TLS vhost first, or the next `nginx -t` fails."""
    paths = certificate_paths(domain)
    removed = False
    for path in (paths.fullchain_path, paths.key_path):
        if path.exists():
            path.unlink()
            removed = True
    if paths.fullchain_path.parent.exists() and not any(paths.fullchain_path.parent.iterdir()):
        paths.fullchain_path.parent.rmdir()
    return removed
