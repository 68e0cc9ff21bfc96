from django.core.management.base import BaseCommand, CommandError

from backups import restic, services
from backups.models import RestoreRun, RunStatus
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
            snapshot = services.snapshot_for_store(store=store, snapshot_id=snapshot_id)
        except (services.SnapshotNotFound, restic.ResticError) as exc:
            raise CommandError(f"refused: {exc}") from exc
        if dry_run:
            self.stdout.write(f"would restore {scope} of store {store.pk} from {snapshot['id']} ({snapshot['time']})")
            return
        try:
            run = services.restore_request(store_id=store.pk, snapshot_id=snapshot["id"], scope=scope)
        except services.BackupConflict as exc:
            raise CommandError(str(exc)) from exc
        run = services.restore_execute(restore_id=run.pk) or RestoreRun.objects.get(pk=run.pk)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"restore {run.pk} failed: {run.error}")
        self.stdout.write(run.log)
