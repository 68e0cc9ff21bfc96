from django.apps import AppConfig


class StagingConfig(AppConfig):
    """Staging copies live in backups' package (they copy a store's data as backups and restores do) but keep
    their own app label, tables and migrations."""

    name = "backups.staging"
    label = "staging"
    verbose_name = "Staging copies"

    def ready(self):
        from backups.staging.kinds import KINDS
        from provisioning import kinds

        # Creating, refreshing and pushing a staging copy are jobs of the one engine: one operation per store.
        for kind in KINDS:
            kinds.register(kind)
