"""The only module that writes nginx vhosts and runs nginx. Commands are argument lists, never shell strings.

A vhost is written atomically, then `nginx -t` runs; when the test fails, the previous file (or none) is
put back and the error names nginx's complaint. Only then is nginx reloaded.
"""

import http.client
import os
import secrets
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.template.loader import render_to_string

from provisioning.exceptions import ProvisioningError


def _nginx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*settings.NGINX_COMMAND, *args], capture_output=True, text=True, timeout=30)


def vhost_path(domain: str) -> Path:
    return Path(settings.NGINX_SITES_DIR) / f"{domain}.conf"


def _reload() -> None:
    reloaded = _nginx("-s", "reload")
    if reloaded.returncode != 0:
        raise ProvisioningError(f"nginx reload failed: {reloaded.stderr.strip()}")


def vhost_write(
    *, store_id: int, domain: str, upstream: str, mode: str = "proxy", certificate=None, force_reload: bool = False
) -> Path:
    """Write (or replace) the store's vhost; `mode` is "proxy" or "maintenance". With a certificate
    (acme_client.Certificate) the same routes are served on HTTPS as well. `force_reload` reloads even
    when the file is unchanged: a renewed certificate has the same paths, and nginx reads it on reload."""
    path = vhost_path(domain)
    path.parent.mkdir(parents=True, exist_ok=True)
    Path(settings.NGINX_ACME_WEBROOT).mkdir(parents=True, exist_ok=True)
    content = render_to_string(
        "provisioning/nginx_vhost.conf",
        {
            "store_id": store_id,
            "domain": domain,
            "upstream": upstream,
            "mode": mode,
            "listen_http": settings.NGINX_LISTEN_HTTP,
            "acme_webroot": settings.NGINX_ACME_WEBROOT,
            "listen_https": settings.NGINX_LISTEN_HTTPS,
            "tls_cert": certificate.fullchain_path if certificate else None,
            "tls_key": certificate.key_path if certificate else None,
        },
    )
    previous = path.read_text() if path.exists() else None
    if previous == content and not force_reload:
        return path
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".vhost-", suffix=".tmp")
    with os.fdopen(handle, "w") as file:
        file.write(content)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)  # atomic: nginx never reads half a file
    tested = _nginx("-t")
    if tested.returncode != 0:
        if previous is None:
            path.unlink()
        else:
            path.write_text(previous)
        raise ProvisioningError(f"nginx rejected the vhost for {domain}; rolled back: {tested.stderr.strip()}")
    _reload()
    vhost_wait_routed(domain=domain)
    return path


def _http_address() -> tuple[str, int]:
    listen = settings.NGINX_LISTEN_HTTP
    host, _, port = listen.rpartition(":")
    return (host or "127.0.0.1"), int(port)


def vhost_wait_routed(*, domain: str, timeout: float = 10.0) -> None:
    """Wait until nginx really serves `domain` from the new config.

    `nginx -s reload` returns before the new workers take over, and an ACME server validating at once
    would still reach an old worker. A probe file in the ACME webroot must come back through the vhost."""
    webroot = Path(settings.NGINX_ACME_WEBROOT) / ".well-known" / "acme-challenge"
    webroot.mkdir(parents=True, exist_ok=True)
    probe = webroot / f"shophosting-probe-{secrets.token_hex(8)}"
    probe.write_text(probe.name)
    probe.chmod(0o644)
    host, port = _http_address()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            connection = http.client.HTTPConnection(host, port, timeout=2)
            try:
                connection.request(
                    "GET", f"/.well-known/acme-challenge/{probe.name}", headers={"Host": domain, "Connection": "close"}
                )
                response = connection.getresponse()
                if response.status == 200 and response.read().decode(errors="replace") == probe.name:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            time.sleep(0.05)
    finally:
        probe.unlink(missing_ok=True)
    raise ProvisioningError(f"nginx did not start routing {domain} within {timeout:.0f} s after the reload")


def vhost_remove(*, domain: str) -> bool:
    path = vhost_path(domain)
    if not path.exists():
        return False
    path.unlink()
    _reload()
    return True


def nginx_status() -> dict:
    """For the health page: whether the configuration passes `nginx -t` and nginx answers on its HTTP address.
    Raises ProvisioningError with nginx's own words when either fails."""
    tested = _nginx("-t")
    if tested.returncode != 0:
        raise ProvisioningError(f"nginx -t failed: {tested.stderr.strip()[-500:]}")
    host, port = _http_address()
    try:
        # Unknown hosts get their connection closed (444), so listening is the answer to look for.
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        raise ProvisioningError(f"nginx does not listen on {host}:{port}: {exc}") from exc
    return {"config": "ok", "address": f"{host}:{port}"}
