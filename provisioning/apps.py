from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning"

    def ready(self):
        from provisioning import db_hardening, kinds, moves, pool_steps, steps, undo, updates
        from provisioning.care import checks  # noqa: F401 - registers provisioning's own checks
        from provisioning.services import store_active_job
        from provisioning.stacks import stack_reservation
        from stores.operations import store_operations_register
        from stores.selectors import stack_reservation_define

        # Placement (stores.services.store_place) counts host capacity by the stacks provisioning runs.
        stack_reservation_define(stack_reservation)

        for kind in (*steps.KINDS, *updates.KINDS, *pool_steps.KINDS, *moves.KINDS, *db_hardening.KINDS, *undo.KINDS):
            kinds.register(kind)
        # Every operation on a store is a job, of whatever kind: one at a time.
        store_operations_register(name="provisioning.jobs", query=store_active_job)
