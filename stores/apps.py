from django.apps import AppConfig


class StoresConfig(AppConfig):
    name = "stores"
    verbose_name = "Stores"

    def ready(self):
        from shophosting.core.customer_pages import customer_pages_track
        from stores.models import Store

        customer_pages_track(Store)
