"""Shared by the store_* commands: parse a store id, enqueue one job kind, report clearly."""

from django.core.management.base import BaseCommand, CommandError

from provisioning.exceptions import JobConflict
from stores.exceptions import InvalidTransition
from stores.models import Store


class StoreJobCommand(BaseCommand):
    kind = ""

    def add_arguments(self, parser):
        parser.add_argument("store_id", type=int, help="The store's id (see the admin or `manage.py hosts`).")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be queued; change nothing.")

    def enqueue(self, store: Store):
        raise NotImplementedError

    def handle(self, *args, **options):
        store = Store.objects.filter(pk=options["store_id"]).first()
        if store is None:
            raise CommandError(f"there is no store with id {options['store_id']}")
        if options["dry_run"]:
            self.stdout.write(f"would queue a {self.kind} job for store {store.pk} ({store.domain}, {store.status})")
            return
        try:
            job = self.enqueue(store)
        except (JobConflict, InvalidTransition) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"queued {job.kind} job #{job.pk} for store {store.pk} ({store.domain})"))
