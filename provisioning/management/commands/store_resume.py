from provisioning.management.commands._store_job import StoreJobCommand
from provisioning.services import job_enqueue


class Command(StoreJobCommand):
    help = "Queue a resume job for one store."
    kind = "resume"

    def enqueue(self, store):
        return job_enqueue(store_id=store.pk, kind=self.kind)
