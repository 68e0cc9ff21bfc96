from django.apps import AppConfig


class StatusPageConfig(AppConfig):
    """The public status page: platform components and the notices staff write about them."""

    name = "shophosting.status"
    label = "statuspage"
    verbose_name = "Status page"
    default_auto_field = "django.db.models.BigAutoField"
