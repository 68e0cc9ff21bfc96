from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from shophosting.deploy import DeployTarget, deploy_render


class Command(BaseCommand):
    help = (
        "Write this server's systemd units and timers, nginx site and snippets, and logrotate rules from the "
        "templates in deploy/ into --out (see deploy/README.md for where each goes)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="An empty or new directory to write into.")
        parser.add_argument("--domain", required=True, help="The platform's own domain, e.g. shophosting.example.")
        defaults = DeployTarget(domain="-")
        for name in (
            "app_dir",
            "venv",
            "user",
            "web_group",
            "env_file",
            "run_dir",
            "nginx_status_dir",
            "nginx_reload_bin",
            "data_dir",
            "log_dir",
            "backup_dir",
            "static_root",
            "media_root",
            "stores_dir",
            "acme_webroot",
            "snippets_dir",
            "firewall_log_dir",
            "listen_http",
            "listen_https",
            "tls_cert",
            "tls_key",
        ):
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=getattr(defaults, name))
        parser.add_argument("--provisioning-workers", type=int, default=defaults.provisioning_workers)
        parser.add_argument(
            "--no-tls", dest="tls", action="store_false", help="Plain HTTP, before the platform's certificate exists."
        )

    def handle(self, *args, out, **options):
        out_dir = Path(out)
        if out_dir.exists() and any(out_dir.iterdir()):
            raise CommandError(f"{out_dir} is not empty; render into a new directory and compare")
        if options["provisioning_workers"] < 1:
            raise CommandError("--provisioning-workers must be at least 1")
        fields = {name: options[name] for name in DeployTarget.__dataclass_fields__ if name in options}
        for path in deploy_render(DeployTarget(**fields), out_dir):
            self.stdout.write(str(path))
