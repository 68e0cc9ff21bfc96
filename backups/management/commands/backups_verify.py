from django.core.management.base import BaseCommand, CommandError

from backups.models import BackupRun
from backups.services.verify import backups_verify
from provisioning.services import job_execute


class Command(BaseCommand):
    help = (
        "Restore the newest snapshot of each store (or one) into throwaway containers and check it answers. "
        "Each check is a job on its store, run here one after another; a busy store is checked next time."
    )

    def add_arguments(self, parser):
        parser.add_argument("--store", type=int, help="Verify this store's newest snapshot, whenever last verified.")
        parser.add_argument("--dry-run", action="store_true", help="List the snapshots that would be checked.")

    def handle(self, *args, store, dry_run, **options):
        runs = backups_verify(store_id=store, dry_run=dry_run)
        failed = 0
        for run in runs:
            if dry_run:
                self.stdout.write(f"would verify {run.snapshot_id[:8]} of store {run.store_id}")
                continue
            try:
                job_execute(job_id=run.verify_job_id)  # the queued delivery then finds it done
            except Exception as exc:  # noqa: BLE001 - the job recorded it on the run; go on with the next store
                self.stderr.write(f"store {run.store_id}: the check stopped: {type(exc).__name__}")
            run = BackupRun.objects.get(pk=run.pk)
            if run.verify_error:
                failed += 1
                self.stderr.write(f"store {run.store_id} snapshot {run.snapshot_id[:8]}: FAILED {run.verify_error}")
            else:
                self.stdout.write(f"store {run.store_id} snapshot {run.snapshot_id[:8]}: verified")
        if failed:
            raise CommandError(f"{failed} snapshot(s) failed verification")
