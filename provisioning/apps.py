from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning"

    def ready(self):
        from provisioning import kinds, steps
        from provisioning.services import store_active_job
        from stores.operations import store_operations_register

        for kind in steps.KINDS:
            kinds.register(kind)
        # Every operation on a store is a job, of whatever kind: one at a time.
        store_operations_register(name="provisioning.jobs", query=store_active_job)
