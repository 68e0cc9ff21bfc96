"""Renders the deployment files in deploy/ (systemd units and timers, nginx site and snippets, logrotate)
for one server. The templates are the single source; `manage.py deploy_render` writes them out and the
tests render them the same way before running `systemd-analyze verify` and `nginx -t` on the result."""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.template import Context, Engine

DEPLOY_DIR = Path(settings.BASE_DIR) / "deploy"
UNITS = [
    "shophosting.target",
    "shophosting-web.service",
    "shophosting-worker-provisioning@.service",
    "shophosting-worker-default.service",
    "shophosting-worker-backups.service",
    "shophosting-worker-pool.service",
    "shophosting-cron.service",
    "shophosting-backup-system.service",
    "shophosting-backup-system.timer",
    "shophosting-backup-code.service",
    "shophosting-backup-code.timer",
    "shophosting-housekeeping.service",
    "shophosting-housekeeping.timer",
    "shophosting-nginx-reload.path",
    "shophosting-nginx-reload.service",
    "shophosting-egress.service",
]
# Rendered path (under the output directory) -> template (under deploy/).
FILES = {
    **{f"systemd/{unit}": f"systemd/{unit}" for unit in UNITS},
    "nginx/sites/shophosting.conf": "nginx/shophosting.conf",
    "nginx/snippets/shophosting-tls.conf": "nginx/snippets/shophosting-tls.conf",
    "nginx/snippets/shophosting-acme.conf": "nginx/snippets/shophosting-acme.conf",
    "nginx/snippets/shophosting-modsecurity.conf": "nginx/snippets/shophosting-modsecurity.conf",
    "logrotate/shophosting": "logrotate/shophosting",
    "tmpfiles/shophosting.conf": "tmpfiles/shophosting.conf",
}


@dataclass
class DeployTarget:
    """Where things live on the server. The defaults are the layout of deploy/README.md."""

    domain: str
    app_dir: str = "/srv/shophosting/app"
    venv: str = "/srv/shophosting/venv"
    user: str = "shophosting"
    # nginx's group (Debian's www-data): it reaches gunicorn's socket and what nginx serves, and nothing else.
    # Never the user's own group, which may read the env file with every secret.
    web_group: str = "www-data"
    env_file: str = "/etc/shophosting/env"
    run_dir: str = "/run/shophosting"
    nginx_status_dir: str = "/run/shophosting-nginx"
    # Root runs it, so it is a root-owned copy outside the checkout (deploy/README.md, step 7).
    nginx_reload_bin: str = "/usr/local/sbin/shophosting-nginx-reload"
    data_dir: str = "/var/lib/shophosting"
    log_dir: str = field(default_factory=lambda: str(settings.LOG_DIR))
    backup_dir: str = "/var/backups/shophosting"
    static_root: str = field(default_factory=lambda: str(settings.STATIC_ROOT))
    media_root: str = field(default_factory=lambda: str(settings.MEDIA_ROOT))
    stores_dir: str = field(default_factory=lambda: str(settings.NGINX_SITES_DIR))
    acme_webroot: str = field(default_factory=lambda: str(settings.NGINX_ACME_WEBROOT))
    snippets_dir: str = "/etc/nginx/snippets"
    listen_http: str = "80"
    listen_https: str = "443"
    rate_per_client: int = field(default_factory=lambda: settings.NGINX_RATE_PER_CLIENT)
    rate_per_store: int = field(default_factory=lambda: settings.NGINX_RATE_PER_STORE)
    firewall_log_dir: str = field(default_factory=lambda: str(settings.NGINX_FIREWALL_LOG_DIR))
    log_retention_days: int = field(default_factory=lambda: settings.LOG_RETENTION_DAYS)
    tls: bool = True  # False before the platform's certificate exists: the site answers on plain HTTP
    tls_cert: str = ""
    tls_key: str = ""
    provisioning_workers: int = 2

    def context(self) -> dict:
        values = asdict(self)
        values["tls_cert"] = self.tls_cert or f"/etc/letsencrypt/live/{self.domain}/fullchain.pem"
        values["tls_key"] = self.tls_key or f"/etc/letsencrypt/live/{self.domain}/privkey.pem"
        values["provisioning_instances"] = list(range(1, self.provisioning_workers + 1))
        return values


def deploy_render(target: DeployTarget, out: Path) -> list[Path]:
    engine = Engine(dirs=[str(DEPLOY_DIR)], autoescape=False)
    context = Context(target.context())
    written = []
    for rendered, template in FILES.items():
        path = out / rendered
        path.parent.mkdir(parents=True, exist_ok=True)
        text = engine.get_template(template).render(context)
        path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("{#")) + "\n")
        written.append(path)
    return written
