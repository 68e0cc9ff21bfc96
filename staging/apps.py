from django.apps import AppConfig


class StagingConfig(AppConfig):
    name = "staging"
    verbose_name = "Staging copies"

    def ready(self):
        from provisioning import kinds
        from staging.kinds import KINDS

        # Creating, refreshing and pushing a staging copy are jobs of the one engine: one operation per store.
        for kind in KINDS:
            kinds.register(kind)
