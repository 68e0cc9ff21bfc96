from django.core.management.base import BaseCommand

from backups.services.retention import backups_prune


class Command(BaseCommand):
    help = "Apply retention by time (per plan for stores; BACKUP_SYSTEM_RETENTION_DAYS for system and code)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List what retention applies to; forget nothing.")

    def handle(self, *args, dry_run, **options):
        for tag, ids in backups_prune(dry_run=dry_run).items():
            self.stdout.write(f"{tag}: {'would apply' if dry_run else f'{len(ids)} forgotten'}")
