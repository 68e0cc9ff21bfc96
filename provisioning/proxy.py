"""The only module that writes nginx vhosts and runs nginx. Commands are argument lists, never shell strings.

A vhost is written atomically, then `nginx -t` runs; when the test fails, the previous file (or none) is
put back and the error names nginx's complaint. Only then is nginx reloaded.
"""

import os
import subprocess
import tempfile
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


def vhost_write(*, store_id: int, domain: str, upstream: str, mode: str = "proxy") -> Path:
    """Write (or replace) the store's vhost; `mode` is "proxy" or "maintenance"."""
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
        },
    )
    previous = path.read_text() if path.exists() else None
    if previous == content:
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
    return path


def vhost_remove(*, domain: str) -> bool:
    path = vhost_path(domain)
    if not path.exists():
        return False
    path.unlink()
    _reload()
    return True
