from django.core.management.base import BaseCommand, CommandError

from provisioning.exceptions import ProvisioningError
from provisioning.hosts import host_images_copy
from stores.models import Host


class Command(BaseCommand):
    help = (
        "Copy the store images from the platform's engine to a host's engine (those it lacks), through the Docker API."
    )

    def add_arguments(self, parser):
        parser.add_argument("host", help="the host's name (the admin's Hosts)")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, **options):
        try:
            host = Host.objects.get(name=options["host"])
        except Host.DoesNotExist as exc:
            raise CommandError(f"no host named {options['host']!r}") from exc
        try:
            host_images_copy(host=host, dry_run=options["dry_run"], log=self.stdout.write)
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc
