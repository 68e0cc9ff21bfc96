"""The only module that writes nginx vhosts and runs nginx. Commands are argument lists, never shell strings.

A vhost is rendered from deploy/nginx/store-vhost.conf and written atomically, then nginx tests the
configuration; when the test fails, the previous file (or none) is put back and the error names nginx's
complaint. Only a configuration that passed is reloaded.

A store whose plan has advanced_security gets the firewall in its vhost (ModSecurity with the OWASP Core Rule
Set, whose rules the platform's nginx config loads once); its blocks go to its own audit log under
NGINX_FIREWALL_LOG_DIR, which firewall_blocks_count reads back for the store page.

Two ways to test and reload: running NGINX_COMMAND directly (development, tests), or, in production where
the workers are not root, asking the root unit shophosting-nginx-reload (deploy/README.md, step 7) through
NGINX_RELOAD_REQUEST_FILE and waiting for its answer in NGINX_RELOAD_STATUS_FILE.
"""

import fcntl
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
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
    """The vhost file `<domain>.conf`: a store's is named by its proxy key (Store.proxy_key, `store-<id>`)."""
    if "/" in _nginx_word("domain", domain) or domain.startswith("."):
        raise ProvisioningError(f"refusing to name an nginx vhost file after {domain!r}")
    return Path(settings.NGINX_SITES_DIR) / f"{domain}.conf"


def vhost_names(*, domain: str) -> set[str]:
    """Every name the vhost file `domain` serves (its server_name lines); empty when there is no file."""
    try:
        text = vhost_path(domain).read_text()
    except (ProvisioningError, OSError):
        return set()
    return {name for line in re.findall(r"^\s*server_name ([^;]+);", text, re.M) for name in line.split()}


def vhost_belongs(*, domain: str, store_id: int) -> bool:
    """Whether the vhost file named `domain` exists and is store `store_id`'s (its managed header says so):
    a store from before proxy keys has its vhost under its signup domain."""
    try:
        path = vhost_path(domain)
        with open(path) as vhost:
            head = vhost.read(200)
    except (ProvisioningError, OSError):
        return False
    return f"# Managed by ShopHosting for store {int(store_id)} (" in head


def _apply() -> str | None:
    """Test the configuration and reload nginx when it passes. Returns nginx's complaint when it failed."""
    if settings.NGINX_RELOAD_REQUEST_FILE:
        return _apply_through_reload_unit()
    if settings.NGINX_PID_FILE:
        return _apply_signalled()
    tested = _nginx("-t")
    if tested.returncode != 0:
        return tested.stderr.strip()
    reloaded = _nginx("-s", "reload")
    if reloaded.returncode != 0:
        raise ProvisioningError(f"nginx reload failed: {reloaded.stderr.strip()}")
    return None


def _apply_signalled() -> str | None:
    """The test and the reload at once. Signalled (SIGHUP), nginx's master reads the configuration again and
    refuses one that does not load, keeping the one it runs, so nothing served changes while `nginx -t`
    beside it says why (the caller then puts the old file back). `nginx -s reload` would parse the whole
    configuration, the firewall's rule set included, once more only to find the master's pid."""
    tester = subprocess.Popen(  # noqa: S603 - NGINX_COMMAND from the settings, an argument list
        [*settings.NGINX_COMMAND, "-t"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        os.kill(int(Path(settings.NGINX_PID_FILE).read_text().strip()), signal.SIGHUP)
    except (OSError, ValueError) as exc:
        tester.kill()
        tester.wait()
        raise ProvisioningError(f"nginx reload failed: no master process in {settings.NGINX_PID_FILE}: {exc}") from exc
    _, complaint = tester.communicate(timeout=30)
    return None if tester.returncode == 0 else complaint.strip()


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


def firewall_log_path(store_id: int) -> Path:
    """The store's firewall log: ModSecurity's audit log, one JSON line per request a rule matched."""
    return Path(settings.NGINX_FIREWALL_LOG_DIR) / f"store-{int(store_id)}.log"


def _http_port_suffix() -> str:
    """ ":<port>" for redirects to plain HTTP when HTTP listens on another port than 80 (tests, the demo)."""
    port = settings.NGINX_LISTEN_HTTP.rpartition(":")[2]
    return "" if port == "80" else f":{int(port)}"


def _https_port_suffix() -> str:
    """ ":<port>" for redirects when HTTPS listens on another port than 443 (tests, a demo); "" otherwise."""
    port = settings.NGINX_LISTEN_HTTPS.rpartition(":")[2]
    return "" if port == "443" else f":{int(port)}"


def vhost_render(
    *,
    store_id: int,
    upstream: str,
    mode: str,
    firewall: bool,
    listen_http: str,
    listen_https: str,
    acme_webroot: str,
    tls_cert: str | None,
    tls_key: str | None,
    domain: str | None = None,
    names: list[str] | None = None,
    tls_names: list[str] | None = None,
    hsts: bool = False,
    primary: str | None = None,
    basic_auth_file: str | None = None,
    noindex: bool = False,
) -> str:
    """A store's vhost from deploy/nginx/store-vhost.conf (NGINX_VHOST_TEMPLATE), the single template of one.

    `names` are every name the store answers on (default: `domain` alone); with a certificate, `tls_names`
    (those of `names` it covers; default: all) are served on HTTPS and their HTTP redirects there (301,
    except ACME challenges), the rest stay on HTTP.
    `firewall` turns ModSecurity on (the plan's advanced_security), `hsts` sends Strict-Transport-Security
    on HTTPS (the store's choice). With `primary` (one of `names`), every other name redirects there with 301
    (to https:// when the primary is in `tls_names`), the ACME path excepted; without, each name is served
    as itself.
    `basic_auth_file` (a staging copy's, basic_auth_write) asks every request but the ACME challenges for a
    user and password; `noindex` sends `X-Robots-Tag: noindex, nofollow`. Raises ProvisioningError when a
    value is not one plain nginx word."""
    names = list(dict.fromkeys(names or ([domain] if domain is not None else [])))
    tls_names = [name for name in dict.fromkeys(names if tls_names is None else tls_names) if name in names]
    tls_names = tls_names if tls_cert else []
    if not names:
        raise ProvisioningError(f"refusing to write an nginx vhost for store {store_id}: it has no names")
    words = {
        "upstream": upstream,
        "mode": mode,
        "listen_http": listen_http,
        "listen_https": listen_https,
        "acme_webroot": acme_webroot,
        "maintenance_root": str(settings.NGINX_MAINTENANCE_ROOT),
        "firewall_log": str(firewall_log_path(store_id)),
        "tls_cert": tls_cert if tls_names else None,
        "tls_key": tls_key if tls_names else None,
        "basic_auth_file": basic_auth_file,
    }
    for field, value in words.items():
        if value is not None or field not in ("tls_cert", "tls_key", "basic_auth_file"):
            _nginx_word(field, str(value))
    for name in names:
        _nginx_word("domain", name)
    if primary is not None and primary not in names:
        raise ProvisioningError(f"refusing to write an nginx vhost: the primary name {primary!r} is not served")
    # Served as themselves: the primary alone when there is one, else every name (on HTTPS when certified).
    proxied = [primary] if primary else names
    redirected = [name for name in names if name not in proxied]
    primary_https = primary in tls_names
    primary_url = ""
    if primary:
        primary_url = (
            f"https://{primary}{_https_port_suffix()}" if primary_https else f"http://{primary}{_http_port_suffix()}"
        )
    if not all(isinstance(flag, bool) for flag in (firewall, hsts, noindex)):
        raise ProvisioningError(
            "refusing to write an nginx vhost: firewall, hsts and noindex must be True or False, not "
            f"{firewall!r}, {hsts!r}, {noindex!r}"
        )
    source = Path(settings.NGINX_VHOST_TEMPLATE).read_text()
    context = {
        "tls_policy": tls_policy(),
        "store_id": int(store_id),
        "firewall": firewall,
        "hsts": hsts,
        "plain_names": " ".join(name for name in proxied if name not in tls_names),
        "tls_names": " ".join(name for name in proxied if name in tls_names),
        "redirect_names": " ".join(redirected),
        "redirect_tls_names": " ".join(name for name in redirected if name in tls_names),
        "primary_url": primary_url,
        "noindex": noindex,
        "https_port_suffix": _https_port_suffix(),
        "burst_per_client": int(settings.NGINX_BURST_PER_CLIENT),
        "burst_per_store": int(settings.NGINX_BURST_PER_STORE),
        **words,
    }
    # What this vhost is, in one word that its ACME location answers with: vhost_wait_routed waits for it,
    # since the platform's default server answers challenges for every name, so a plain probe passes
    # through the old configuration as well.
    context["revision"] = hashlib.sha256(json.dumps([source, context], sort_keys=True).encode()).hexdigest()[:16]
    return engines["django"].from_string(source).render(context)


TLS_POLICY_DIRECTIVES = ("ssl_protocols", "ssl_ciphers", "ssl_prefer_server_ciphers")


def tls_policy() -> str:
    """The protocols and ciphers of every store's HTTPS server: those of the platform's own site, read from
    deploy/nginx/snippets/shophosting-tls.conf (NGINX_TLS_POLICY_FILE) so the two never drift apart. Without
    them a store's server would fall back to nginx's default list, which still offers CBC ciphers with no
    forward secrecy. Only the policy lines: the session cache settings belong to the platform's server."""
    path = Path(settings.NGINX_TLS_POLICY_FILE)
    lines = [line.strip() for line in path.read_text().splitlines()]
    policy = [line for line in lines if line.split(" ", 1)[0] in TLS_POLICY_DIRECTIVES]
    missing = set(TLS_POLICY_DIRECTIVES) - {line.split(" ", 1)[0] for line in policy}
    if missing or any(not re.fullmatch(r"[a-z_]+ [A-Za-z0-9.:+ -]+;", line) for line in policy):
        raise ProvisioningError(f"{path} must set {', '.join(sorted(missing)) or 'plain values'} for the stores' TLS")
    return "\n    ".join(policy)


def _revision(vhost: str) -> str:
    return re.search(r"add_header X-ShopHosting-Vhost (\w+) always;", vhost).group(1)


def vhost_write(
    *,
    store_id: int,
    domain: str,
    upstream: str,
    firewall: bool,
    names: list[str] | None = None,
    mode: str = "proxy",
    certificate=None,
    tls_names: list[str] | None = None,
    hsts: bool = False,
    primary: str | None = None,
    replaces: str | None = None,
    basic_auth_file: str | None = None,
    noindex: bool = False,
    force_reload: bool = False,
    settle: bool = True,
) -> Path:
    """Write (or replace) the store's vhost, the file named after `domain` (a store's proxy key), serving `names`
    (default: `domain` alone), the others redirecting to `primary` when given; `mode` is "proxy" or
    "maintenance", `firewall` the plan's advanced_security.
    With a certificate (acme_client.Certificate) the `tls_names` it covers (default: all) are served on HTTPS,
    and their HTTP redirects there. `force_reload` reloads even when the file is unchanged: a renewed
    certificate has the same paths, and nginx reads it on reload. `replaces` names an older vhost file of the
    same store (under its signup domain) that goes in the same change: two files serving one name would
    leave nginx routing it to the first one it loaded. `settle`: see vhost_wait_routed."""
    names = list(names or [domain])
    # Rendered first: a refused value raises before any directory or file is touched.
    content = vhost_render(
        store_id=store_id,
        names=names,
        upstream=upstream,
        mode=mode,
        firewall=firewall,
        listen_http=settings.NGINX_LISTEN_HTTP,
        listen_https=settings.NGINX_LISTEN_HTTPS,
        acme_webroot=settings.NGINX_ACME_WEBROOT,
        tls_cert=str(certificate.fullchain_path) if certificate else None,
        tls_key=str(certificate.key_path) if certificate else None,
        tls_names=tls_names,
        hsts=hsts,
        primary=primary,
        basic_auth_file=basic_auth_file,
        noindex=noindex,
    )
    path = vhost_path(domain)
    path.parent.mkdir(parents=True, exist_ok=True)
    Path(settings.NGINX_ACME_WEBROOT).mkdir(parents=True, exist_ok=True)
    if firewall:
        # nginx cannot open a log in a missing directory; in production it exists already (deploy/README.md).
        firewall_log_path(store_id).parent.mkdir(parents=True, exist_ok=True)
    old_path = vhost_path(replaces) if replaces and replaces != domain else None
    with _vhosts_locked():
        previous = path.read_text() if path.exists() else None
        old_previous = old_path.read_text() if old_path and old_path.exists() else None
        if previous == content and not force_reload and old_previous is None:
            return path
        _write_atomic(path, content)
        if old_path:
            old_path.unlink(missing_ok=True)
        try:
            complaint = _apply()
        except ProvisioningError:
            _restore(path, previous)
            if old_path and old_previous is not None:
                _restore(old_path, old_previous)
            raise
        if complaint is not None:
            _restore(path, previous)
            if old_path and old_previous is not None:
                _restore(old_path, old_previous)
            if settings.NGINX_RELOAD_REQUEST_FILE:
                _apply()  # so the unit's last answer describes the configuration in force again
            raise ProvisioningError(f"nginx rejected the vhost for {domain}; rolled back: {complaint}")
    vhost_wait_routed(domain=names[0], revision=_revision(content), settle=settle)
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


ROUTED = "X-ShopHosting-Vhost"
# After starting the new workers nginx's master waits 100 ms before it tells the old ones to stop
# (ngx_master_process_cycle), and until then they still accept connections with the old configuration.
OLD_WORKERS_ACCEPTING = 0.15


def vhost_wait_routed(*, domain: str, revision: str, timeout: float = 10.0, settle: bool = True) -> None:
    """Wait until nginx really serves `domain` from the new config.

    `nginx -s reload` returns before the new workers take over, and a request at once (an ACME server
    validating, a visitor after a plan change) would still reach an old worker. A probe file in the ACME
    webroot must come back through the vhost of this `revision` (its X-ShopHosting-Vhost header). Then, with
    `settle`, the old workers' last moment of accepting is waited out (OLD_WORKERS_ACCEPTING); a caller that
    has its own work to do meanwhile passes False and waits out what is left of it itself."""
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
                answered = response.read().decode(errors="replace")
                if response.status == 200 and answered == probe.name and response.getheader(ROUTED) == revision:
                    if settle:
                        time.sleep(OLD_WORKERS_ACCEPTING)
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            time.sleep(0.05)
    finally:
        probe.unlink(missing_ok=True)
    raise ProvisioningError(f"nginx did not start routing {domain} within {timeout:.0f} s after the reload")


def basic_auth_path(store_id: int) -> Path:
    return Path(settings.NGINX_AUTH_DIR) / f"store-{int(store_id)}.htpasswd"


def basic_auth_write(*, store_id: int, user: str, password: str) -> Path:
    """The store's nginx `auth_basic_user_file`: one user with a SHA-512 crypt hash (`openssl passwd -6`,
    the password on stdin, never a command line), written atomically, readable by nginx's workers. Written
    again only when the password no longer matches, so a vhost rewrite does not churn it."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", user) or not password or "\n" in password:
        raise ProvisioningError("refusing a basic-auth user or password with characters nginx cannot read")
    path = basic_auth_path(store_id)
    if path.exists():
        known_user, _, known_hash = path.read_text().strip().partition(":")
        salt = known_hash.split("$")[2] if known_hash.startswith("$6$") else None
        if known_user == user and salt and _crypt_sha512(password, salt=salt) == known_hash:
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, f"{user}:{_crypt_sha512(password)}\n")
    return path


def _crypt_sha512(password: str, *, salt: str | None = None) -> str:
    command = ["openssl", "passwd", "-6", "-stdin"] + (["-salt", salt] if salt else [])
    result = subprocess.run(command, input=password, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise ProvisioningError(f"openssl could not hash the basic-auth password: {result.stderr.strip()[:300]}")
    return result.stdout.strip()


def basic_auth_remove(*, store_id: int) -> bool:
    path = basic_auth_path(store_id)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


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


def firewall_blocks_count(*, store_id: int, since: datetime, max_bytes: int | None = None) -> tuple[int, bool]:
    """How many requests the store's firewall blocked (answered 403) since `since`, and whether the count is
    only a lower bound. Reads the log's current file and the one logrotate kept uncompressed before it
    (deploy/logrotate: weekly), newest line first, and stops at the first line older than `since` or after
    `max_bytes` (FIREWALL_LOG_READ_BYTES) from their ends: a page view never reads a whole large log.

    Each line's time is the start of its transaction id ("$msec-$request_id", store-vhost.conf), seconds
    since the epoch: no time zone between nginx and the reader."""
    budget = settings.FIREWALL_LOG_READ_BYTES if max_bytes is None else max_bytes
    since_epoch = since.timestamp()
    current = firewall_log_path(store_id)
    rotated = sorted(
        (p for p in current.parent.glob(f"{current.name}-*") if not p.name.endswith(".gz")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    blocked = 0
    for path in [current, *rotated[:1]]:
        try:
            with open(path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                start = max(size - budget, 0)
                log.seek(start)
                data = log.read(size - start)
        except FileNotFoundError:
            continue
        budget -= len(data)
        lines = data.split(b"\n")
        if start > 0:
            lines = lines[1:]  # cut in the middle: the first line is partial
        for line in reversed(lines):
            entry = _audit_entry(line)
            if entry is None:
                continue
            started, code = entry
            if started < since_epoch:
                return blocked, False
            blocked += code == 403
        if start > 0:
            return blocked, True  # the budget ran out before the window's start
    return blocked, False


def _audit_entry(line: bytes) -> tuple[float, int] | None:
    """(transaction start in epoch seconds, HTTP status) of one audit log line; None for what is not one."""
    try:
        transaction = json.loads(line)["transaction"]
        started = float(transaction["unique_id"].partition("-")[0])
        return started, int(transaction["response"]["http_code"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


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
