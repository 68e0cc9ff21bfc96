from provisioning.management.commands._store_job import StoreJobCommand
from provisioning.services import store_retry


class Command(StoreJobCommand):
    help = "Retry a failed store's provisioning; the new job resumes where the last one failed."
    kind = "retry"

    def enqueue(self, store):
        return store_retry(store_id=store.pk)
