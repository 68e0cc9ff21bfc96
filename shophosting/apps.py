from django.apps import AppConfig


class ShopHostingConfig(AppConfig):
    """The project package as an app: it holds the platform-wide operator commands (deploy_render,
    release_status). It has no models."""

    name = "shophosting"
    verbose_name = "ShopHosting platform"
