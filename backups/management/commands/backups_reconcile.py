import django_rq
from django.core.management.base import BaseCommand, CommandError

from backups import jobs, restic
from backups.services.reconcile import snapshots_reconcile


class Command(BaseCommand):
    help = (
        "Queue the job that makes the backup records match the repository (snapshots made or forgotten outside "
        "the platform, and ones made before tags were namespaced). --now runs it here and prints what changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true", help="Run it in this process instead of queueing it.")
        parser.add_argument("--dry-run", action="store_true", help="List what would change; change nothing.")

    def handle(self, *args, now, dry_run, **options):
        if not (now or dry_run):
            job = django_rq.get_queue("backups").enqueue(jobs.snapshots_reconcile)
            self.stdout.write(f"queued {job.id} on the backups queue")
            return
        try:
            changes = snapshots_reconcile(dry_run=dry_run)
        except restic.ResticError as exc:
            raise CommandError(f"the repository could not be read, nothing changed: {exc}") from exc
        prefix = "would be " if dry_run else ""
        for what, ids in changes.items():
            self.stdout.write(f"{prefix}{what}: {len(ids)} {' '.join(i[:8] for i in ids)}".rstrip())
