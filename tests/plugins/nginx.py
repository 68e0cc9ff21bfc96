"""The test nginx on 127.0.0.1:18080: the platform's default server and the vhosts the tests write."""

import os
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.plugins.ci import require_tool

NGINX_CONF = """
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
    return NGINX_CONF.format(user=user, prefix=prefix, listen=listen)


@pytest.fixture(scope="session")
def nginx_server():
    """A real nginx on 127.0.0.1:18080 with the test settings' prefix; the vhosts tests write are routed."""
    require_tool(settings.NGINX_COMMAND[0])
    prefix = Path(settings.NGINX_SITES_DIR).parent
    for directory in ("sites", "acme", "tmp"):
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    for stale in (prefix / "sites").glob("*.conf"):
        stale.unlink()
    (prefix / "nginx.conf").write_text(nginx_test_conf(prefix=prefix, listen=settings.NGINX_LISTEN_HTTP))
    subprocess.run([*settings.NGINX_COMMAND, "-s", "quit"], capture_output=True)  # a leftover from a killed run
    time.sleep(0.2)
    subprocess.run(settings.NGINX_COMMAND, check=True)
    yield settings.NGINX_LISTEN_HTTP
    subprocess.run([*settings.NGINX_COMMAND, "-s", "quit"], capture_output=True)
