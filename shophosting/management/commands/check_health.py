import json

from django.core.management.base import BaseCommand

from shophosting.health import health_report


class Command(BaseCommand):
    help = (
        "Check the database, Redis, Docker and the workers, with every detail; exit 1 when any is unhealthy "
        "(for monitoring). Needs the docker group: it asks the engines itself and records the answer for "
        "/healthz and the staff health page."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the report as JSON.")

    def handle(self, *args, as_json: bool = False, **options):
        healthy, checks, info = health_report(check_docker=True)
        if as_json:
            self.stdout.write(json.dumps({"healthy": healthy, "checks": checks, "info": info}))
        else:
            for name, result in {**checks, **info}.items():
                state = "ok" if result["ok"] else f"FAILED: {result['error']}"
                note = " (informational)" if name in info else ""
                self.stdout.write(f"{name:14} {state}{note}")
        if not healthy:
            raise SystemExit(1)
