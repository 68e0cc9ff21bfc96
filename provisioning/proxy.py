"""The only module that writes nginx vhosts and runs nginx. Commands are argument lists, never shell strings.

A vhost is rendered from deploy/nginx/store-vhost.conf and written atomically, then nginx tests the
configuration; when the test fails, the previous file (or none) is put back and the error names nginx's
complaint. Only a configuration that passed is reloaded.

Two ways to test and reload: running NGINX_COMMAND directly (development, tests), or, in production where
the workers are not root, asking the root unit shophosting-nginx-reload (deploy/README.md, step 7) through
NGINX_RELOAD_REQUEST_FILE and waiting for its answer in NGINX_RELOAD_STATUS_FILE.
"""

import fcntl
import http.client
import os
import secrets
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.template import engines

from provisioning.exceptions import ProvisioningError


def _nginx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*settings.NGINX_COMMAND, *args], capture_output=True, text=True, timeout=30)


# The vhost template has autoescape off: nginx, not HTML, reads it. Whitespace ends a directive's value
# (`server_name victim.example\n.x.example` would claim another store's name), `;` ends the directive,
# braces open or close blocks, `#` starts a comment, quotes and `$` are parsed. No value may carry one.
_NGINX_SYNTAX = frozenset(";{}#\"'`\\$")


def _nginx_word(field: str, value: str) -> str:
    """`value` unchanged when nginx reads it as one plain word; else ProvisioningError naming the field."""
    if not value or any(c.isspace() or not c.isprintable() or c in _NGINX_SYNTAX for c in value):
        raise ProvisioningError(
            f"refusing to write an nginx vhost: the {field} {value!r} is empty or contains whitespace, "
            "a control character or nginx syntax"
        )
    return value


def vhost_path(domain: str) -> Path:
    if "/" in _nginx_word("domain", domain) or domain.startswith("."):
        raise ProvisioningError(f"refusing to name an nginx vhost file after {domain!r}")
    return Path(settings.NGINX_SITES_DIR) / f"{domain}.conf"


def _apply() -> str | None:
    """Test the configuration and reload nginx when it passes. Returns nginx's complaint when it failed."""
    if settings.NGINX_RELOAD_REQUEST_FILE:
        return _apply_through_reload_unit()
    tested = _nginx("-t")
    if tested.returncode != 0:
        return tested.stderr.strip()
    reloaded = _nginx("-s", "reload")
    if reloaded.returncode != 0:
        raise ProvisioningError(f"nginx reload failed: {reloaded.stderr.strip()}")
    return None


@contextmanager
def _vhosts_locked():
    """Workers on one host take turns to change vhosts: one worker's `nginx -t` must never judge (and roll
    back) another's half-finished change, and one reload request never overwrites another still waiting."""
    sites = Path(settings.NGINX_SITES_DIR)
    sites.mkdir(parents=True, exist_ok=True)
    with open(sites / ".shophosting.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _apply_through_reload_unit() -> str | None:
    """Write a request id, wait for the root unit's answer carrying the same id (the caller holds the lock)."""
    request = Path(settings.NGINX_RELOAD_REQUEST_FILE)
    status = Path(settings.NGINX_RELOAD_STATUS_FILE)
    request_id = secrets.token_hex(8)
    _write_atomic(request, request_id + "\n")
    deadline = time.monotonic() + settings.NGINX_RELOAD_TIMEOUT
    while time.monotonic() < deadline:
        answered_id, _, answer = (status.read_text().strip() if status.exists() else "").partition(" ")
        if answered_id == request_id:
            return None if answer == "ok" else answer.removeprefix("failed").strip()
        time.sleep(0.05)
    raise ProvisioningError(
        f"nginx did not answer the reload request within {settings.NGINX_RELOAD_TIMEOUT} s: is "
        "shophosting-nginx-reload.path enabled (systemctl status shophosting-nginx-reload.path)?"
    )


def _write_atomic(path: Path, content: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    with os.fdopen(handle, "w") as file:
        file.write(content)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)  # atomic: nginx never reads half a file


def vhost_render(
    *,
    store_id: int,
    domain: str,
    upstream: str,
    mode: str,
    listen_http: str,
    listen_https: str,
    acme_webroot: str,
    tls_cert: str | None,
    tls_key: str | None,
) -> str:
    """A store's vhost from deploy/nginx/store-vhost.conf (NGINX_VHOST_TEMPLATE), the single template of one.
    Raises ProvisioningError when a value is not one plain nginx word (see _nginx_word)."""
    words = {
        "domain": domain,
        "upstream": upstream,
        "mode": mode,
        "listen_http": listen_http,
        "listen_https": listen_https,
        "acme_webroot": acme_webroot,
        "maintenance_root": str(settings.NGINX_MAINTENANCE_ROOT),
        "tls_cert": tls_cert,
        "tls_key": tls_key,
    }
    for field, value in words.items():
        if value is not None or field not in ("tls_cert", "tls_key"):
            _nginx_word(field, str(value))
    template = engines["django"].from_string(Path(settings.NGINX_VHOST_TEMPLATE).read_text())
    return template.render({"store_id": int(store_id), **words})


def vhost_write(
    *, store_id: int, domain: str, upstream: str, mode: str = "proxy", certificate=None, force_reload: bool = False
) -> Path:
    """Write (or replace) the store's vhost; `mode` is "proxy" or "maintenance". With a certificate
    (acme_client.Certificate) the same routes are served on HTTPS as well. `force_reload` reloads even
    when the file is unchanged: a renewed certificate has the same paths, and nginx reads it on reload."""
    # Rendered first: a refused value raises before any directory or file is touched.
    content = vhost_render(
        store_id=store_id,
        domain=domain,
        upstream=upstream,
        mode=mode,
        listen_http=settings.NGINX_LISTEN_HTTP,
        listen_https=settings.NGINX_LISTEN_HTTPS,
        acme_webroot=settings.NGINX_ACME_WEBROOT,
        tls_cert=str(certificate.fullchain_path) if certificate else None,
        tls_key=str(certificate.key_path) if certificate else None,
    )
    path = vhost_path(domain)
    path.parent.mkdir(parents=True, exist_ok=True)
    Path(settings.NGINX_ACME_WEBROOT).mkdir(parents=True, exist_ok=True)
    with _vhosts_locked():
        previous = path.read_text() if path.exists() else None
        if previous == content and not force_reload:
            return path
        _write_atomic(path, content)
        try:
            complaint = _apply()
        except ProvisioningError:
            _restore(path, previous)
            raise
        if complaint is not None:
            _restore(path, previous)
            if settings.NGINX_RELOAD_REQUEST_FILE:
                _apply()  # so the unit's last answer describes the configuration in force again
            raise ProvisioningError(f"nginx rejected the vhost for {domain}; rolled back: {complaint}")
    vhost_wait_routed(domain=domain)
    return path


def _restore(path: Path, previous: str | None) -> None:
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        _write_atomic(path, previous)


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
    with _vhosts_locked():
        if not path.exists():
            return False
        path.unlink()
        complaint = _apply()
    if complaint is not None:
        raise ProvisioningError(f"nginx refused its configuration after removing {domain}'s vhost: {complaint}")
    return True


def nginx_status() -> dict:
    """For the health page: whether the configuration passes `nginx -t` and nginx answers on its HTTP address.
    Raises ProvisioningError with nginx's own words when either fails."""
    if settings.NGINX_RELOAD_REQUEST_FILE:
        # The workers cannot run `nginx -t` as themselves: the root unit's last answer stands for it.
        status = Path(settings.NGINX_RELOAD_STATUS_FILE)
        answer = status.read_text().strip().partition(" ")[2] if status.exists() else "ok"
        if answer != "ok":
            raise ProvisioningError(f"the last nginx reload failed: {answer[-500:]}")
    else:
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
