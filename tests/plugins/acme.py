"""Debian's pebble as the ACME CA, validating http-01 through the test nginx (tests/plugins/nginx.py)."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.plugins.ci import require_tool


def _pebble_tls_files(directory: Path) -> None:
    """A small CA and a certificate for 127.0.0.1/localhost, for pebble's own HTTPS (Debian ships none)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if (directory / "ca.pem").exists() and (directory / "cert.pem").exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ShopHosting test ACME CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "cert.pem").write_bytes(cert.public_bytes(pem))
    (directory / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="session")
def acme_server(nginx_server):
    """Debian's pebble on 127.0.0.1:14000 with real http-01 validation through the test nginx, and
    pebble-challtestsrv as its DNS (every name resolves to 127.0.0.1; the machine's resolver is never used)."""
    import requests

    require_tool("pebble")
    require_tool("pebble-challtestsrv")
    directory = Path(settings.ACME_CA_BUNDLE).parent
    _pebble_tls_files(directory)
    config = {
        "pebble": {
            "listenAddress": "127.0.0.1:14000",
            "managementListenAddress": "127.0.0.1:15000",
            "certificate": str(directory / "cert.pem"),
            "privateKey": str(directory / "key.pem"),
            "httpPort": int(settings.NGINX_LISTEN_HTTP.rsplit(":", 1)[1]),
            "tlsPort": int(settings.NGINX_LISTEN_HTTPS.rsplit(":", 1)[1]),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": 3600,
        }
    }
    (directory / "pebble-config.json").write_text(json.dumps(config))
    # Accounts do not survive a pebble restart: a new account key for each pebble lifetime.
    Path(settings.ACME_ACCOUNT_KEY_PATH).unlink(missing_ok=True)
    dns = subprocess.Popen(
        [
            "pebble-challtestsrv",
            "-dns01",
            "127.0.0.1:8053",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            "127.0.0.1:8055",
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pebble = subprocess.Popen(
        ["pebble", "-config", str(directory / "pebble-config.json"), "-dnsserver", "127.0.0.1:8053"],
        env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(settings.ACME_DIRECTORY_URL, verify=settings.ACME_CA_BUNDLE, timeout=1)
            break
        except requests.RequestException:
            if pebble.poll() is not None or time.monotonic() > deadline:
                dns.kill()
                raise RuntimeError(f"pebble did not start: {pebble.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.1)
    time.sleep(0.2)
    if pebble.poll() is not None:  # another pebble answered: ours could not bind its ports
        dns.kill()
        raise RuntimeError(f"pebble exited (a stale pebble still running?): {pebble.stderr.read().decode()[-2000:]}")
    root = requests.get("https://127.0.0.1:15000/roots/0", verify=settings.ACME_CA_BUNDLE, timeout=5).text
    yield root  # the root that issued certificates chain to (new at every pebble start)
    pebble.terminate()
    dns.terminate()
    pebble.wait(timeout=10)
    dns.wait(timeout=10)
