from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups"

    def ready(self):
        from backups import care_checks, recovery_kinds, transfer_kinds
        from backups import kinds as backup_kinds
        from backups.handlers import store_live_first_backup
        from backups.models import BackupRun
        from backups.services.pre_update import pre_update_backup_restore, pre_update_backup_take
        from provisioning import kinds
        from provisioning.care.checks import check_register
        from provisioning.hooks import store_live_register
        from provisioning.safety import snapshot_provider_register
        from shophosting.core.customer_pages import customer_pages_track

        # Backups, restores and verifications are jobs of the engine: one operation per store at a time.
        for kind in (*backup_kinds.KINDS, *transfer_kinds.KINDS, *recovery_kinds.KINDS):
            kinds.register(kind)
        store_live_register(
            name="backups.first_backup", promise="its first backup is scheduled", react=store_live_first_backup
        )
        # An update (provisioning.updates) backs the store up first and, if it fails, puts its data back.
        snapshot_provider_register(take=pre_update_backup_take, restore=pre_update_backup_restore)
        # Store care runs these with provisioning's own checks: a stale backup or a failed verification warns
        # (an incident), without counting as downtime.
        check_register(name="backup", title="Last backup", run=care_checks.last_backup)
        check_register(name="backup_verification", title="Backup verification", run=care_checks.last_verification)
        # The customer's dashboard shows each store's last good backup: a run's writes make it stale.
        customer_pages_track(BackupRun)
