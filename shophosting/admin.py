"""Admin pages that compose several apps, registered here because Django's autodiscovery imports this module
(shophosting is an installed app) and the composition root may import every app."""

from shophosting.staff import customer_admin, store_admin  # noqa: F401 - registers CustomerAdmin and StoreAdmin
