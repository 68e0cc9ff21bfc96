from django.core.management.base import BaseCommand, CommandError

from backups import restic
from backups.models import BackupRun, RunStatus
from backups.services.records import BackupConflict, SnapshotNotFound
from backups.services.restore import final_backup_restore_into_new_store
from stores.models import Store


class Command(BaseCommand):
    help = (
        "Bring back a store whose subscription ended: build a new store for the same customer and plan on "
        "DOMAIN and restore the old store's final backup into it."
    )

    def add_arguments(self, parser):
        parser.add_argument("old_store_id", type=int)
        parser.add_argument("domain", help="The new store's domain (the old one may be taken again or not).")
        parser.add_argument("--dry-run", action="store_true", help="Check the final backup; build nothing.")

    def handle(self, *args, old_store_id, domain, dry_run, **options):
        old = Store.objects.filter(pk=old_store_id).first()
        if old is None:
            raise CommandError(f"there is no store {old_store_id}")
        final = old.backup_runs.filter(kind=BackupRun.Kind.FINAL, status=RunStatus.SUCCEEDED).first()
        if final is None or final.forgotten_at:
            raise CommandError(f"store {old.pk} has no final backup that is still kept")
        if dry_run:
            self.stdout.write(f"would build {domain} for {old.customer} and restore {final.snapshot_id[:8]}")
            return
        try:
            run = final_backup_restore_into_new_store(old_store_id=old.pk, domain=domain)
        except (SnapshotNotFound, BackupConflict, restic.ResticError) as exc:
            raise CommandError(str(exc)) from exc
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"restore {run.pk} into store {run.store_id} failed: {run.error}")
        self.stdout.write(
            f"store {run.store_id} ({domain}) restored from {final.snapshot_id[:8]}; "
            "it has no subscription yet: attach one or bill it by hand"
        )
