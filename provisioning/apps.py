from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning"

    def ready(self):
        from provisioning.services import store_active_job
        from provisioning.stacks import stack_reservation
        from stores.operations import store_operations_register
        from stores.selectors import stack_reservation_define

        # Placement (stores.services.store_place) counts host capacity by the stacks provisioning runs.
        stack_reservation_define(stack_reservation)

        # Every job kind touches the store's containers: one at a time, and never beside a backup or restore.
        store_operations_register(name="provisioning.jobs", query=store_active_job)
