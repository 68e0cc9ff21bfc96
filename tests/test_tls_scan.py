"""A store's HTTPS, scanned from outside by Debian's testssl.sh: no protocol below TLS 1.2 and no weak cipher.

The vhost is written by proxy.vhost_write into the real test nginx, as every store's is, with a certificate of
its own (the scan judges the server's protocols and ciphers, not who signed the certificate: pebble's would
add an ACME order and nothing to look at). testssl.sh is told the address, so it resolves nothing
(`--nodns none`) and talks to 127.0.0.1 only.
"""

import datetime
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings

from provisioning import proxy
from provisioning.acme_client import Certificate
from tests.plugins.ci import require_tool

NAME = "tls-scan.test"
WEAK_PROTOCOLS = ("SSLv2", "SSLv3", "TLS1", "TLS1_1")
# testssl.sh's cipher categories below "strong": none may be offered.
WEAK_CIPHER_CATEGORIES = (
    "cipherlist_NULL",
    "cipherlist_aNULL",
    "cipherlist_EXPORT",
    "cipherlist_LOW",
    "cipherlist_3DES_IDEA",
    "cipherlist_AVERAGE",  # CBC ciphers, "obsoleted" in later testssl versions
)


class _Store(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        body = b"a store"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def self_signed_certificate(directory) -> Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # what the ACME client's CSRs use
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate = Certificate(fullchain_path=directory / "fullchain.pem", key_path=directory / "privkey.pem")
    certificate.fullchain_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certificate.key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return certificate


@pytest.fixture
def store_on_https(nginx_server, tmp_path):
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Store)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    proxy.vhost_write(
        store_id=990_001,
        domain=NAME,
        upstream=f"127.0.0.1:{upstream.server_address[1]}",
        firewall=False,
        certificate=self_signed_certificate(tmp_path),
    )
    yield settings.NGINX_LISTEN_HTTPS
    proxy.vhost_remove(domain=NAME)
    upstream.shutdown()
    upstream.server_close()


@pytest.mark.docker  # the shared test nginx runs under the lock
def test_testssl_finds_no_protocol_below_tls_1_2_and_no_weak_cipher_on_a_store_s_vhost(store_on_https, tmp_path):
    require_tool("testssl")
    host, _, port = store_on_https.rpartition(":")
    report = tmp_path / "testssl.json"
    scan = subprocess.run(
        [
            "testssl",
            "--quiet",
            "--color=0",
            "--warnings=off",
            "--nodns=none",
            f"--ip={host}",
            "--protocols",
            "--std",
            f"--jsonfile={report}",
            f"https://{NAME}:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.exists(), scan.stdout[-2000:] + scan.stderr[-2000:]
    findings = {row["id"]: row["finding"] for row in json.loads(report.read_text())}

    for protocol in WEAK_PROTOCOLS:
        assert findings.get(protocol, "").startswith("not offered"), (protocol, findings.get(protocol))
    assert findings["TLS1_2"].startswith("offered"), findings["TLS1_2"]
    assert findings["TLS1_3"].startswith("offered"), findings["TLS1_3"]
    for category in WEAK_CIPHER_CATEGORIES:
        assert findings.get(category) == "not offered", (category, findings.get(category))
    assert findings["cipherlist_STRONG"].startswith("offered"), findings["cipherlist_STRONG"]


def test_the_stores_tls_policy_is_the_platform_snippet_s_and_a_broken_one_is_refused(settings, tmp_path):
    policy = proxy.tls_policy()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in policy
    assert "ssl_ciphers ECDHE-" in policy and "ssl_session_cache" not in policy
    broken = tmp_path / "tls.conf"
    broken.write_text("ssl_protocols TLSv1.2 TLSv1.3;\n")
    settings.NGINX_TLS_POLICY_FILE = str(broken)
    with pytest.raises(proxy.ProvisioningError, match="must set ssl_ciphers, ssl_prefer_server_ciphers"):
        proxy.tls_policy()
