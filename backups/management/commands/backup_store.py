from django.core.management.base import BaseCommand, CommandError

from backups.models import BackupRun, RunStatus
from backups.services.backup import backup_enqueue
from backups.services.records import BackupConflict, store_tags
from provisioning.services import job_execute
from stores.models import Store


class Command(BaseCommand):
    help = "Back up one store now (database dump and files, one restic snapshot) and wait for it."

    def add_arguments(self, parser):
        parser.add_argument("store_id", type=int)
        parser.add_argument("--dry-run", action="store_true", help="Say what would be backed up; change nothing.")

    def handle(self, *args, store_id, dry_run, **options):
        store = Store.objects.filter(pk=store_id).first()
        if store is None:
            raise CommandError(f"there is no store {store_id}")
        if store.host_id is None:
            raise CommandError(f"store {store_id} ({store.get_status_display()}) was never built; nothing to back up")
        if dry_run:
            self.stdout.write(f"would back up store {store.pk} ({store.domain}) with tags {store_tags(store)}")
            return
        try:
            run = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
        except BackupConflict as exc:
            raise CommandError(str(exc)) from exc
        job_execute(job_id=run.job_id)  # here, in this process; the queued delivery then finds it done
        run = BackupRun.objects.get(pk=run.pk)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"backup {run.pk} failed: {run.error}")
        self.stdout.write(f"snapshot {run.snapshot_id} ({run.size_bytes} bytes, {run.duration_seconds:.1f} s)")
