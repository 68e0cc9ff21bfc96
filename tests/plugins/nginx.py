"""The test nginx on 127.0.0.1:18080: the platform's default server and the vhosts the tests write."""

import os
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.plugins.ci import require_or_skip, require_tool

# Debian's libnginx-mod-http-modsecurity; on a server /etc/nginx/modules-enabled/ loads it the same way.
MODSECURITY_MODULE = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so"

NGINX_CONF = """
load_module {modsecurity_module};
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    # What the platform's config gives every store vhost (deploy/nginx/shophosting.conf): the rate limit
    # zones and the firewall's rules, loaded once and off unless a vhost turns them on.
    map "" $shophosting_store {{ default ""; }}
    limit_req_zone "$shophosting_store $binary_remote_addr" zone=shophosting_store_client:20m rate={rate_per_client}r/s;
    limit_req_zone $shophosting_store zone=shophosting_store:5m rate={rate_per_store}r/s;
    modsecurity off;
    modsecurity_rules_file {modsecurity_rules};
    # The platform's default server: ACME challenges for any name (so validation never depends on a
    # reload having reached every worker), and nothing else for names without a store.
    server {{
        listen {listen} default_server;
        location /.well-known/acme-challenge/ {{ root {prefix}/acme; }}
        location / {{ return 444; }}
    }}
    include {prefix}/sites/*.conf;
}}
"""


def nginx_test_conf(*, prefix: Path, listen: str) -> str:
    """The test nginx's main config. Started by root, nginx would run its workers as `nobody`, who cannot
    enter a checkout under a 0700 directory (/root/...) to read the ACME webroot or its temp paths: so its
    workers run as the invoking user. Not root, nginx cannot switch users and its workers are already us."""
    user = ""
    if os.geteuid() == 0:
        import grp
        import pwd

        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    return NGINX_CONF.format(
        user=user,
        prefix=prefix,
        listen=listen,
        modsecurity_module=MODSECURITY_MODULE,
        # The rendered copy on a server; the template has nothing to fill in.
        modsecurity_rules=Path(settings.BASE_DIR) / "deploy" / "nginx" / "snippets" / "shophosting-modsecurity.conf",
        rate_per_client=settings.NGINX_RATE_PER_CLIENT,
        rate_per_store=settings.NGINX_RATE_PER_STORE,
    )


@pytest.fixture(scope="session")
def nginx_server():
    """A real nginx on 127.0.0.1:18080 with the test settings' prefix; the vhosts tests write are routed."""
    require_tool(settings.NGINX_COMMAND[0])
    for package, path in (
        ("libnginx-mod-http-modsecurity", MODSECURITY_MODULE),
        ("modsecurity-crs", "/usr/share/modsecurity-crs/rules"),
    ):
        if not Path(path).exists():
            require_or_skip(package, f"{path} is missing; bin/test installs the Debian package")
    prefix = Path(settings.NGINX_SITES_DIR).parent
    for directory in ("sites", "acme", "tmp"):
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    for stale in (prefix / "sites").glob("*.conf"):
        stale.unlink()
    firewall_logs = Path(settings.NGINX_FIREWALL_LOG_DIR)
    firewall_logs.mkdir(parents=True, exist_ok=True)
    for stale in firewall_logs.glob("store-*.log*"):
        stale.unlink()
    (prefix / "nginx.conf").write_text(nginx_test_conf(prefix=prefix, listen=settings.NGINX_LISTEN_HTTP))
    subprocess.run([*settings.NGINX_COMMAND, "-s", "quit"], capture_output=True)  # a leftover from a killed run
    time.sleep(0.2)
    subprocess.run(settings.NGINX_COMMAND, check=True)
    yield settings.NGINX_LISTEN_HTTP
    subprocess.run([*settings.NGINX_COMMAND, "-s", "quit"], capture_output=True)
