from django.core.management.base import BaseCommand, CommandError

from backups import services


class Command(BaseCommand):
    help = "Restore the newest snapshot of each store (or one) into throwaway containers and check it answers."

    def add_arguments(self, parser):
        parser.add_argument("--store", type=int, help="Verify this store's newest snapshot, whenever last verified.")
        parser.add_argument("--dry-run", action="store_true", help="List the snapshots that would be checked.")

    def handle(self, *args, store, dry_run, **options):
        runs = services.backups_verify(store_id=store, dry_run=dry_run)
        failed = 0
        for run in runs:
            if dry_run:
                self.stdout.write(f"would verify {run.snapshot_id[:8]} of store {run.store_id}")
            elif run.verify_error:
                failed += 1
                self.stderr.write(f"store {run.store_id} snapshot {run.snapshot_id[:8]}: FAILED {run.verify_error}")
            else:
                self.stdout.write(f"store {run.store_id} snapshot {run.snapshot_id[:8]}: verified")
        if failed:
            raise CommandError(f"{failed} snapshot(s) failed verification")
