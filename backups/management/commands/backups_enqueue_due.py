from django.core.management.base import BaseCommand

from backups.services.retention import backups_enqueue_due


class Command(BaseCommand):
    help = "Queue a backup of every active store whose last backup is older than BACKUP_INTERVAL_HOURS."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List the stores that are due; queue nothing.")

    def handle(self, *args, dry_run, **options):
        due = backups_enqueue_due(dry_run=dry_run)
        verb = "due" if dry_run else "queued"
        self.stdout.write(f"{len(due)} store(s) {verb}: {', '.join(map(str, due)) or '-'}")
