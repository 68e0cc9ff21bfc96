from provisioning.management.commands._store_job import StoreJobCommand
from provisioning.services import job_enqueue


class Command(StoreJobCommand):
    help = "Queue a teardown job for one store."
    kind = "teardown"

    def enqueue(self, store):
        return job_enqueue(store_id=store.pk, kind=self.kind)
