from django.core.management.base import BaseCommand, CommandError

from backups import restic


class Command(BaseCommand):
    help = "Initialise the restic repository (RESTIC_REPOSITORY) when it is missing. Safe to run again."

    def handle(self, *args, **options):
        try:
            created = restic.repository_init()
        except (restic.ResticError, OSError) as exc:
            raise CommandError(f"could not initialise the repository: {exc}") from exc
        self.stdout.write("repository created" if created else "repository already exists")
