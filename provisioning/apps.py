from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning"

    def ready(self):
        from provisioning.services import store_active_job
        from stores.operations import store_operations_register

        # Every job kind touches the store's containers: one at a time, and never beside a backup or restore.
        store_operations_register(name="provisioning.jobs", query=store_active_job)
