from django.core.management.base import BaseCommand, CommandError

from backups import restic
from backups.models import RestoreRun, RunStatus
from backups.services.records import BackupConflict, SnapshotNotFound
from backups.services.restore import restore_request, snapshot_for_store
from provisioning.models import JobLogLine
from provisioning.services import job_execute
from stores.models import Store


class Command(BaseCommand):
    help = "Restore one store from one of its snapshots: db, files or all. A pre-restore backup is taken first."

    def add_arguments(self, parser):
        parser.add_argument("store_id", type=int)
        parser.add_argument("snapshot_id")
        parser.add_argument("scope", choices=RestoreRun.Scope.values)
        parser.add_argument("--dry-run", action="store_true", help="Check the snapshot; change nothing.")

    def handle(self, *args, store_id, snapshot_id, scope, dry_run, **options):
        store = Store.objects.filter(pk=store_id).first()
        if store is None:
            raise CommandError(f"there is no store {store_id}")
        try:
            snapshot = snapshot_for_store(store=store, snapshot_id=snapshot_id)
        except (SnapshotNotFound, restic.ResticError) as exc:
            raise CommandError(f"refused: {exc}") from exc
        if dry_run:
            self.stdout.write(f"would restore {scope} of store {store.pk} from {snapshot['id']} ({snapshot['time']})")
            return
        try:
            run = restore_request(store_id=store.pk, snapshot_id=snapshot["id"], scope=scope)
        except BackupConflict as exc:
            raise CommandError(str(exc)) from exc
        job_execute(job_id=run.job_id)  # here, in this process; the queued delivery then finds it done
        run = RestoreRun.objects.get(pk=run.pk)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"restore {run.pk} failed: {run.error}")
        for line in JobLogLine.objects.filter(step__job_id=run.job_id).select_related("step"):
            self.stdout.write(f"[{line.step.title}] {line.message}")
