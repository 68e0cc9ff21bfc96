from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups"

    def ready(self):
        from backups.services import store_active_run
        from stores.operations import store_operations_register

        # A backup reads, and a restore rewrites, the store's containers and volumes: never beside a job.
        store_operations_register(name="backups.runs", query=store_active_run)
