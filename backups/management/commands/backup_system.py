from django.core.management.base import BaseCommand, CommandError

from backups.models import BackupRun, RunStatus
from backups.services.records import BackupConflict
from backups.services.system import system_backup_enqueue, system_backup_execute, system_backup_paths


class Command(BaseCommand):
    help = "Take the system backup (platform database, nginx sites, certificates, env file) now and wait for it."

    def add_arguments(self, parser):
        parser.add_argument("--code", action="store_true", help="Back up the application code instead.")
        parser.add_argument("--dry-run", action="store_true", help="List what would be backed up.")

    def handle(self, *args, code, dry_run, **options):
        kind = BackupRun.Kind.CODE if code else BackupRun.Kind.SYSTEM
        if dry_run:
            paths = ["(application code)"] if code else ["platform database", *system_backup_paths()]
            self.stdout.write("would back up: " + ", ".join(paths))
            return
        try:
            run = system_backup_enqueue(kind=kind)
        except BackupConflict as exc:
            raise CommandError(str(exc)) from exc
        run = system_backup_execute(run_id=run.pk) or BackupRun.objects.get(pk=run.pk)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"{kind} backup {run.pk} failed: {run.error}")
        self.stdout.write(f"{kind} snapshot {run.snapshot_id} ({run.size_bytes} bytes, {run.duration_seconds:.1f} s)")
