from provisioning.management.commands._store_job import StoreJobCommand
from provisioning.orders import store_order_paid


class Command(StoreJobCommand):
    help = "Start provisioning a store as if its order was paid (idempotent: one order, one job)."
    kind = "provision"

    def enqueue(self, store):
        return store_order_paid(store_id=store.pk)
