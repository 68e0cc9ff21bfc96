"""Production deployment (deploy/): every rendered systemd unit and timer passes `systemd-analyze verify`,
the rendered nginx configs pass `nginx -t`, nothing uses sudo, and the install guide (deploy/README.md),
followed on this machine in a scratch directory, gives a working platform behind a real nginx."""

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import MySQLdb
import pytest
import requests
from django.core.management import call_command

from tests.conftest import ROOT
from tests.plugins.nginx import MODSECURITY_MODULE

DOMAIN = "platform.test"
VENV = Path(sys.executable).parent.parent


def render(out: Path, **overrides) -> Path:
    options = {
        "domain": DOMAIN,
        "app_dir": str(ROOT),
        "venv": str(VENV),
        "run_dir": str(out.parent / "run"),
        "data_dir": str(out.parent / "data"),
        "log_dir": str(out.parent / "log"),
        "backup_dir": str(out.parent / "backups"),
        "static_root": str(out.parent / "static"),
        "stores_dir": str(out.parent / "stores"),
        "acme_webroot": str(out.parent / "acme"),
        "snippets_dir": str(out / "nginx" / "snippets"),
        "nginx_status_dir": str(out.parent / "nginx-status"),
        "nginx_reload_bin": str(ROOT / "deploy" / "bin" / "nginx-reload"),
        **overrides,
    }
    call_command("deploy_render", out=str(out), **options)
    return out


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def nginx_main_conf(prefix: Path, site: Path) -> Path:
    """A private nginx around the rendered site, as Debian's nginx.conf includes sites-enabled/* (and loads
    libnginx-mod-http-modsecurity's module from modules-enabled/, whose paths are relative to /etc/nginx)."""
    for directory in ("temp", "logs"):
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    (prefix / "temp").chmod(0o777)
    conf = prefix / "nginx.conf"
    # Workers as root: the scratch directories are private to the test runner (on a server nginx's www-data
    # reaches what it serves through directories of its own group, deploy/README.md step 2).
    conf.write_text(
        f"""user root;
load_module {MODSECURITY_MODULE};
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {site};
}}
"""
    )
    return conf


def store_vhost(
    stores_dir: Path, acme_webroot: Path, cert: Path, key: Path, mode: str, *, firewall: bool, store_id: int = 1
) -> Path:
    """A store's vhost exactly as provisioning renders it (provisioning/proxy.py, deploy/nginx/store-vhost.conf)."""
    from provisioning import proxy

    stores_dir.mkdir(parents=True, exist_ok=True)
    domain = f"shop-{mode}{'-firewall' if firewall else ''}.test"
    path = stores_dir / f"{domain}.conf"
    path.write_text(
        proxy.vhost_render(
            store_id=store_id,
            domain=domain,
            upstream="127.0.0.1:9",
            mode=mode,
            firewall=firewall,
            listen_http="127.0.0.1:18280",
            listen_https="127.0.0.1:18643",
            acme_webroot=str(acme_webroot),
            tls_cert=str(cert),
            tls_key=str(key),
        )
    )
    return path


# --- systemd ---------------------------------------------------------------------------------------------


def test_every_rendered_unit_and_timer_passes_systemd_analyze_verify(tmp_path):
    out = render(tmp_path / "out")
    units = out / "systemd"
    template = units / "shophosting-worker-provisioning@.service"
    shutil.copy(template, units / "shophosting-worker-provisioning@1.service")
    shutil.copy(template, units / "shophosting-worker-provisioning@2.service")
    files = sorted(str(p) for p in units.iterdir() if p.name != template.name)
    assert len(files) == 17

    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", *files], capture_output=True, text=True)

    ours = [line for line in verified.stderr.splitlines() if "shophosting" in line]
    assert verified.returncode == 0 and ours == [], verified.stderr
    web = (units / "shophosting-web.service").read_text()
    for hardening in ("ProtectSystem=strict", "PrivateTmp=true", "NoNewPrivileges=true", "User=shophosting"):
        assert hardening in web
    provisioning = template.read_text()
    assert "SupplementaryGroups=docker" in provisioning and "--with-scheduler" in provisioning
    # logrotate checks that the user exists; this machine has no shophosting user, so check a root copy.
    rules = tmp_path / "logrotate-root"
    rules.write_text((out / "logrotate" / "shophosting").read_text().replace("shophosting shophosting", "root root"))
    logrotate = subprocess.run(["logrotate", "--debug", str(rules)], capture_output=True, text=True)
    assert logrotate.returncode == 0 and "error" not in logrotate.stderr.lower(), logrotate.stderr
    # The leave page promises that logs keep a closed account's address LOG_RETENTION_DAYS at most.
    assert "rotate 30\n    maxage 30\n" in rules.read_text()
    target = (units / "shophosting.target").read_text()
    assert "shophosting-worker-provisioning@1.service shophosting-worker-provisioning@2.service" in target
    # The stores' outbound fence: root (only root changes the firewall), after dockerd and again whenever it
    # restarts, logging where no application file can become root's.
    egress = (units / "shophosting-egress.service").read_text()
    assert "User=" not in egress and "PartOf=docker.service" in egress and "After=docker.service" in egress
    assert "WantedBy=multi-user.target docker.service" in egress
    assert re.search(r"^ExecStart=/usr/bin/env LOG_DIR=/var/log/shophosting-egress .* egress_apply$", egress, re.M)


def unit_groups(path: Path) -> set[str]:
    """The groups a rendered unit runs with (Group= and SupplementaryGroups=), besides the user's own."""
    groups = set()
    for value in re.findall(r"^(?:Group|SupplementaryGroups)=(.*)$", path.read_text(), re.M):
        groups |= set(value.split())
    return groups


def test_only_the_workers_and_housekeeping_get_the_docker_group_never_the_web_tier(tmp_path):
    out = render(tmp_path / "out")
    units = out / "systemd"
    web = units / "shophosting-web.service"
    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", str(web)], capture_output=True, text=True)
    assert verified.returncode == 0 and "shophosting" not in verified.stderr, verified.stderr

    with_docker = {path.name for path in units.iterdir() if "docker" in unit_groups(path)}

    assert unit_groups(web) == {"shophosting"}
    # The user itself joins no docker group: every unit, the web one too, would inherit it.
    assert "docker" not in guide_group_members().get("shophosting", set())
    assert with_docker == {
        "shophosting-worker-provisioning@.service",
        "shophosting-worker-default.service",
        "shophosting-worker-backups.service",
        "shophosting-worker-pool.service",
        "shophosting-housekeeping.service",
    }


def test_deploy_render_refuses_a_directory_with_files_in_it(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(Exception, match="is not empty"):
        render(tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


# --- nginx -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain-http-before-the-certificate"])
def test_the_rendered_nginx_site_with_store_vhosts_passes_nginx_t(tmp_path, settings, tls):
    settings.NGINX_FIREWALL_LOG_DIR = str(tmp_path / "firewall")
    (tmp_path / "firewall").mkdir()
    cert, key = self_signed(tmp_path / "certs", DOMAIN)
    out = render(
        tmp_path / "out",
        listen_http="127.0.0.1:18280",
        listen_https="127.0.0.1:18643",
        tls_cert=str(cert),
        tls_key=str(key),
        **({} if tls else {"tls": False}),
    )
    store_cert, store_key = self_signed(tmp_path / "certs", "shop-proxy.test")
    # Every kind of store vhost: routed or suspended, with the firewall (advanced_security) or without.
    for store_id, (mode, firewall) in enumerate(
        [("proxy", False), ("maintenance", False), ("proxy", True), ("maintenance", True)], 1
    ):
        store_vhost(
            tmp_path / "stores", tmp_path / "acme", store_cert, store_key, mode, firewall=firewall, store_id=store_id
        )
    conf = nginx_main_conf(tmp_path / "nginx", out / "nginx" / "sites" / "shophosting.conf")

    tested = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path / "nginx"), "-c", str(conf)], capture_output=True, text=True
    )

    assert tested.returncode == 0, tested.stderr
    site = (out / "nginx" / "sites" / "shophosting.conf").read_text()
    assert ("ssl_certificate" in site) is tls and f"include {tmp_path / 'stores'}/*.conf;" in site
    # The firewall's rules were loaded, once, and each firewalled store opened its own audit log.
    assert "ModSecurity-nginx" in tested.stderr and "rules loaded inline/local/remote: 0/0/0" not in tested.stderr
    assert sorted(p.name for p in (tmp_path / "firewall").iterdir()) == ["store-3.log", "store-4.log"]


# --- no sudo ---------------------------------------------------------------------------------------------


def test_nothing_uses_sudo():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    uses = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in (".png", ".ico") or not path.is_file() or name == "tests/test_deploy.py":
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            # Allowed: the explanations of why there is none.
            if re.search(r"\bsudo\b", line) and not re.search(r"(?i)\b(no|never|nor|without|not)\b[^.]*\bsudo\b", line):
                uses.append(f"{name}:{number}: {line.strip()}")
    assert uses == []


# --- the install guide -----------------------------------------------------------------------------------


def guide_commands(section: str) -> list[str]:
    """The shell lines of one numbered section of deploy/README.md, as an operator would paste them."""
    text = (ROOT / "deploy" / "README.md").read_text()
    body = text.split(f"\n## {section}")[1].split("\n## ")[0]
    return [line for block in re.findall(r"```sh\n(.*?)```", body, re.S) for line in block.splitlines()]


def guide_words(section: str) -> list[list[str]]:
    """The commands of one section, split as the shell would: continuation lines and quotes that span lines
    joined, comments dropped."""
    commands, pending = [], ""
    for line in "\n".join(guide_commands(section)).replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on on the next line
            continue
        pending = ""
        if words:
            commands.append(words)
    return commands


def guide_group_members() -> dict[str, set[str]]:
    """Who the guide puts in which group (usermod -aG, gpasswd -a, adduser USER GROUP), across every step."""
    text = (ROOT / "deploy" / "README.md").read_text()
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    members: dict[str, set[str]] = {}
    for section in sections:
        for words in guide_words(section):
            if words[0] == "usermod" and "-aG" in words:
                members.setdefault(words[-1], set()).update(words[words.index("-aG") + 1].split(","))
            elif words[:2] == ["gpasswd", "-a"]:
                members.setdefault(words[2], set()).add(words[3])
            elif words[0] == "adduser" and len(words) == 3 and not words[1].startswith("-"):
                members.setdefault(words[1], set()).add(words[2])
    return members


def install_options(words: list[str]) -> dict[str, str]:
    return {flag: words[words.index(flag) + 1] for flag in ("-m", "-o", "-g") if flag in words}


def test_the_env_file_with_every_secret_is_for_root_and_the_application_never_nginx(tmp_path):
    """deploy/README.md as an operator follows it: nginx (www-data, and any group the guide adds it to) can
    neither read /etc/shophosting/env nor enter /etc/shophosting, and reaches gunicorn's socket by its own
    group, not the application's."""
    nginx_groups = {"www-data"} | guide_group_members().get("www-data", set())
    step2, step5 = guide_words("2. User and directories"), guide_words("5. The env file")

    [env] = [words for words in step5 if words[0] == "install" and words[-1] == "/etc/shophosting/env"]
    env = install_options(env)
    assert env["-o"] == "root" and env["-g"] not in nginx_groups
    assert int(env["-m"], 8) & 0o007 == 0  # nothing for others
    [etc] = [words for words in step2 if words[:2] == ["install", "-d"] and words[-1] == "/etc/shophosting"]
    etc = install_options(etc)
    assert etc["-g"] not in nginx_groups and int(etc["-m"], 8) & 0o007 == 0
    password_groups = {words[1] for words in step5 if words[0] == "chgrp" and "restic-password" in words[-1]}
    assert password_groups and not password_groups & nginx_groups

    # nginx's way in: the runtime directory (gunicorn's socket) is setgid to nginx's group.
    out = render(tmp_path / "out")
    [run_dir] = [
        line.split()
        for line in (out / "tmpfiles" / "shophosting.conf").read_text().splitlines()
        if line.startswith(f"d {tmp_path / 'run'} ")
    ]
    assert run_dir[2:5] == ["2750", "shophosting", "www-data"]
    socket_dirs = [words for words in step2 if words[:2] == ["install", "-d"] and "/srv/shophosting/static" in words]
    assert socket_dirs and install_options(socket_dirs[0])["-g"] == "www-data"


@pytest.fixture
def scratch_database():
    """A MariaDB database and user of its own, as the guide's step 4 makes them; dropped afterwards."""
    name = f"shinstall_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    root = MySQLdb.connect(host="127.0.0.1", port=3306, user="root")
    cursor = root.cursor()
    step4 = " ".join(guide_commands("4. Database")[1:]).split('"')[1]
    statement = step4.replace("shophosting.*", f"{name}.*").replace("DATABASE shophosting", f"DATABASE {name}")
    statement = statement.replace("'shophosting'@'localhost'", f"'{name}'@'%'").replace("$DB_PASSWORD", password)
    for sql in filter(None, (s.strip() for s in statement.split(";"))):
        cursor.execute(sql)
    yield f"mysql://{name}:{password}@127.0.0.1:3306/{name}"
    cursor.execute(f"DROP DATABASE IF EXISTS {name}")
    cursor.execute(f"DROP USER IF EXISTS '{name}'@'%'")
    root.close()


def test_the_install_guide_gives_a_working_platform(tmp_path, scratch_database):
    """Steps 4 to 8 of deploy/README.md with this machine's MariaDB and Redis, in a scratch directory: the
    application commands exactly as written (their `runuser` and paths swapped for the scratch ones), then
    gunicorn started as the rendered unit starts it, behind nginx with the rendered site."""
    from cryptography.fernet import Fernet

    scratch = tmp_path
    env_file = scratch / "etc" / "env"
    env_file.parent.mkdir()
    dirs = {
        name: scratch / name
        for name in ("log", "static", "media", "private", "tls", "acme", "stores", "run", "backups")
    }
    for directory in dirs.values():
        directory.mkdir(parents=True, exist_ok=True)
    # Step 5: .env.example, then the values that must be set (later lines win).
    settings_lines = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": scratch_database,
        "REDIS_URL": "redis://127.0.0.1:6379/12",
        "CREDENTIALS_KEY": Fernet.generate_key().decode(),
        "DJANGO_ALLOWED_HOSTS": DOMAIN,
        "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{DOMAIN}",
        "SITE_URL": f"https://{DOMAIN}",
        "PLATFORM_DOMAIN": DOMAIN,
        "LOG_DIR": dirs["log"],
        "SECURITY_LOG_PATH": dirs["log"] / "security.log",
        "STATIC_ROOT": dirs["static"],
        "MEDIA_ROOT": dirs["media"],
        "TICKET_ATTACHMENT_DIR": dirs["private"] / "attachments",
        "BACKUP_EXPORT_DIR": dirs["private"] / "restore-exports",
        "TLS_CERT_DIR": dirs["tls"],
        "NGINX_SITES_DIR": dirs["stores"],
        "NGINX_ACME_WEBROOT": dirs["acme"],
        "NGINX_RELOAD_REQUEST_FILE": dirs["run"] / "nginx-reload.request",
        "NGINX_RELOAD_STATUS_FILE": dirs["run"] / "nginx-reload.status",
        "RESTIC_REPOSITORY": dirs["backups"] / "restic",
        "RESTIC_PASSWORD_FILE": scratch / "etc" / "restic-password",
        "BACKUP_STAGING_DIR": dirs["backups"] / "staging",
        "RESTIC_CACHE_DIR": dirs["backups"] / "cache",
        "PLATFORM_ENV_FILE": env_file,
        "PLATFORM_TIMERS_EXTERNAL": "true",
    }
    guide_keys = {line.split("=")[0] for line in guide_commands("5. The env file") if re.match(r"^[A-Z_]+=", line)}
    assert guide_keys == set(settings_lines)  # the scratch env file sets exactly what the guide sets
    env_file.write_text(
        (ROOT / ".env.example").read_text() + "\n" + "".join(f"{k}={v}\n" for k, v in settings_lines.items())
    )
    (scratch / "etc" / "restic-password").write_text(secrets.token_urlsafe(24))
    # A clean environment, as systemd and a login shell give: nothing of the test run's own settings leaks in.
    clean_env = {"PATH": os.environ["PATH"], "HOME": str(scratch), "LANG": "C.UTF-8"}
    manage_env = {**clean_env, "SHOPHOSTING_ENV_FILE": str(env_file), "SHOPHOSTING_VENV": str(VENV)}

    def run(command: str, **kwargs) -> subprocess.CompletedProcess:
        command = command.replace("/srv/shophosting/app", str(ROOT))
        result = subprocess.run(
            shlex.split(command), env=manage_env, capture_output=True, text=True, timeout=900, **kwargs
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    # Step 6, command by command (images_build is the test suite's own fixture; it takes minutes cold. Its
    # --production run needs Docker Hub, wordpress.org and repo.magento.com: tests/test_provisioning_commands.py
    # checks what it would run).
    manage = f"{ROOT}/deploy/bin/shophosting-manage"
    step6 = [line for line in guide_commands("6.") if line.startswith("$M ")]
    assert [line.split()[1] for line in step6] == [
        "check",
        "migrate",
        "collectstatic",
        "plans_seed",
        "site_seed",
        "backups_init",
        "images_build",
        "images_build",
        "create_admin",
        "release_status",
    ]
    outputs = {}
    for line in step6:
        if line.split()[1] == "images_build":
            continue
        outputs[line.split()[1]] = run(line.replace("$M", manage), stdin=subprocess.DEVNULL)
    assert "System check identified no issues" in outputs["check"].stdout
    assert "version: " in outputs["release_status"].stdout
    assert "migrations: none pending" in outputs["release_status"].stdout
    assert "you@shophosting.example" in outputs["create_admin"].stdout
    assert (dirs["static"] / "css" / "site.css").exists()

    # Step 7 and 8: render, then nginx around gunicorn started as the rendered unit starts it.
    cert, key = self_signed(scratch / "certs", DOMAIN)
    out = scratch / "rendered"
    run(
        f"{manage} deploy_render --domain {DOMAIN} --out {out} --app-dir {ROOT} --venv {VENV} "
        f"--run-dir {dirs['run']} --log-dir {dirs['log']} --static-root {dirs['static']} "
        f"--stores-dir {dirs['stores']} --acme-webroot {dirs['acme']} --snippets-dir {out}/nginx/snippets "
        f"--listen-http 127.0.0.1:18380 --listen-https 127.0.0.1:18743 --tls-cert {cert} --tls-key {key}"
    )
    unit = (out / "systemd" / "shophosting-web.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M)[1]
    web_env = dict(line.split("=", 1) for line in re.findall(r"^Environment=(.*)$", unit, re.M))
    prefix = scratch / "nginx"
    conf = nginx_main_conf(prefix, out / "nginx" / "sites" / "shophosting.conf")
    # What systemd gives the unit: its Environment= lines and the env file; then the scratch socket.
    gunicorn_env = {**clean_env, **web_env}
    gunicorn_env.update(
        line.split("=", 1) for line in env_file.read_text().splitlines() if re.match(r"^[A-Z_]+=", line)
    )
    gunicorn_env.update(GUNICORN_BIND=f"unix:{dirs['run']}/gunicorn.sock", GUNICORN_WORKERS="2")
    web = subprocess.Popen(
        shlex.split(exec_start),
        cwd=ROOT,
        env=gunicorn_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    nginx = None
    try:
        for _ in range(100):
            if (dirs["run"] / "gunicorn.sock").exists():
                break
            assert web.poll() is None, web.stdout.read().decode()[-3000:]
            time.sleep(0.2)
        run(f"nginx -t -p {prefix} -c {conf}")
        nginx = subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])
        # It parses the whole OWASP rule set before it listens: about a second, longer on a busy machine.
        for _ in range(150):
            assert nginx.poll() is None, "nginx exited"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", 18743)) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("nginx did not listen on 127.0.0.1:18743 within 30 s")

        def get(path: str):
            # A self-signed certificate for the platform's name, reached by its loopback address.
            return requests.get(
                f"https://127.0.0.1:18743{path}",
                headers={"Host": DOMAIN},
                timeout=20,
                verify=False,  # noqa: S501
            )

        home = get("/")
        assert home.status_code == 200 and "ShopHosting" in home.text
        assert re.fullmatch(r"[0-9a-f]{32}", home.headers["X-Request-ID"])  # nginx's $request_id, passed through
        static = get("/static/css/site.css")
        assert static.status_code == 200 and "immutable" in static.headers["Cache-Control"]
        assert get("/pricing/").status_code == 200
        # No worker runs in this scratch install: /healthz says only that something is down, check_health what.
        health = get("/healthz")
        assert health.status_code == 503 and health.json() == {"status": "unavailable"}
        checked = subprocess.run(
            [manage, "check_health", "--json"], env=manage_env, capture_output=True, text=True, timeout=120
        )
        report = json.loads(checked.stdout)
        assert checked.returncode == 1 and not report["checks"]["worker"]["ok"], checked.stderr[-3000:]
        assert report["checks"]["database"]["ok"] and report["checks"]["redis"]["ok"]
        plain = requests.get("http://127.0.0.1:18380/", headers={"Host": DOMAIN}, allow_redirects=False, timeout=10)
        assert plain.status_code == 301 and plain.headers["Location"] == f"https://{DOMAIN}/"
        web_log = (dirs["log"] / "web.log").read_text().splitlines()
        assert web_log and all(line.startswith("{") for line in web_log)  # JSON lines
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)


@pytest.mark.django_db
def test_release_status_prints_the_version_and_no_pending_migrations(capsys):
    call_command("release_status")
    printed = capsys.readouterr().out
    assert printed.startswith("version: ") and "migrations: none pending" in printed


def test_the_store_vhost_template_is_the_one_in_deploy():
    from provisioning import proxy

    rendered = proxy.vhost_render(
        store_id=7,
        domain="one.test",
        upstream="127.0.0.1:9",
        mode="proxy",
        firewall=False,
        listen_http="80",
        listen_https="443",
        acme_webroot="/acme",
        tls_cert=None,
        tls_key=None,
    )
    assert "Rendered by provisioning/proxy.py from deploy/nginx/store-vhost.conf" in rendered
    assert not (ROOT / "provisioning" / "templates" / "provisioning" / "nginx_vhost.conf").exists()


# --- the nginx reload unit -------------------------------------------------------------------------------


class ReloadUnit:
    """Does what shophosting-nginx-reload.path and .service do, minus systemd: when the request file changes,
    run deploy/bin/nginx-reload (as root, here the test runner) against the tests' nginx."""

    def __init__(self, request: Path, status: Path, nginx_command: list[str]):
        import threading

        self.request, self.status = request, status
        self.env = {**os.environ, "NGINX": " ".join(nginx_command)}
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self):
        seen = None
        while not self._stop.is_set():
            stamp = self.request.stat().st_mtime_ns if self.request.exists() else None
            if stamp is not None and stamp != seen:
                seen = stamp
                subprocess.run(
                    [str(ROOT / "deploy" / "bin" / "nginx-reload"), str(self.request), str(self.status)],
                    env=self.env,
                    check=False,
                )
                self.runs += 1
            time.sleep(0.02)


@pytest.mark.django_db
def test_workers_reload_nginx_through_the_root_unit_and_roll_back_what_it_refuses(tmp_path, settings, nginx_server):
    from provisioning import proxy
    from provisioning.exceptions import ProvisioningError

    settings.NGINX_RELOAD_REQUEST_FILE = str(tmp_path / "nginx-reload.request")
    settings.NGINX_RELOAD_STATUS_FILE = str(tmp_path / "nginx-reload.status")
    with ReloadUnit(
        tmp_path / "nginx-reload.request", tmp_path / "nginx-reload.status", settings.NGINX_COMMAND
    ) as unit:
        path = proxy.vhost_write(store_id=1, domain="through-unit.test", upstream="127.0.0.1:29999", firewall=False)
        assert unit.runs == 1  # and vhost_write waited until nginx really routed the domain
        good = path.read_text()
        with pytest.raises(ProvisioningError, match="nginx rejected the vhost for through-unit.test; rolled back"):
            proxy.vhost_write(store_id=1, domain="through-unit.test", upstream="127.0.0.1:notaport", firewall=False)
        assert path.read_text() == good
        assert proxy.nginx_status()["config"] == "ok"  # the last answer of the unit, after the rollback
        assert proxy.vhost_remove(domain="through-unit.test") is True
    settings.NGINX_RELOAD_STATUS_FILE = str(tmp_path / "nobody-answers")
    settings.NGINX_RELOAD_TIMEOUT = 1
    with pytest.raises(ProvisioningError, match="shophosting-nginx-reload.path"):
        proxy.vhost_write(store_id=1, domain="unanswered.test", upstream="127.0.0.1:29999", firewall=False)
    assert not proxy.vhost_path("unanswered.test").exists()


# --- gunicorn's access log ---------------------------------------------------------------------------------


def test_the_access_log_is_one_valid_json_line_per_request_whatever_the_client_sends(tmp_path):
    """Real gunicorn with deploy/gunicorn.conf.py (its logger class) in front of a tiny WSGI app: header
    values with quotes and backslashes, and a path with an encoded line break, stay inside their strings."""
    (tmp_path / "probe_app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'ok']\n"
    )
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {
        "PATH": os.environ["PATH"],
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "1",
    }
    server = subprocess.Popen(
        [
            str(VENV / "bin" / "gunicorn"),
            "--config",
            str(ROOT / "deploy" / "gunicorn.conf.py"),
            "--pythonpath",
            str(tmp_path),
            "probe_app:app",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    hostile = {
        "User-Agent": 'Mozilla/5.0 ", "status": 200, "forged": "yes \\ end',
        "Referer": 'https://evil.example/"}\\u000a{"forged": true',
        "X-Request-ID": 'abc", "remote": "10.0.0.1',
        "X-Forwarded-For": '203.0.113.9"',
    }
    path = "/shop%22%0A%7B%22forged%22:%20true%7D"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/ready", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        answer = requests.get(f"http://127.0.0.1:{port}{path}", headers=hostile, timeout=5)
        assert answer.status_code == 200
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 2, output  # the readiness probe and the hostile request, nothing forged
    record = json.loads(lines[1])
    assert record["user_agent"] == hostile["User-Agent"] and record["referer"] == hostile["Referer"]
    assert record["request_id"] == hostile["X-Request-ID"] and record["remote"] == hostile["X-Forwarded-For"]
    assert record["path"] == '/shop"\n{"forged": true}' and record["status"] == 200 and record["method"] == "GET"
    assert "forged" not in json.loads(lines[0]).get("path", "") and set(record) >= {"time", "duration_ms", "bytes"}
