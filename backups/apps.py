from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups"

    def ready(self):
        from backups.handlers import store_live_first_backup
        from backups.services import store_active_run
        from provisioning.hooks import store_live_register
        from stores.operations import store_operations_register

        # A backup reads, and a restore rewrites, the store's containers and volumes: never beside a job.
        store_operations_register(name="backups.runs", query=store_active_run)
        store_live_register(
            name="backups.first_backup", promise="its first backup is queued", react=store_live_first_backup
        )
