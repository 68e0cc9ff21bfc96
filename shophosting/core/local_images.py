"""Store images built on this machine by `manage.py images_build` (no registry is reachable here).

Magento and OpenSearch have clearly named stand-ins. dev and test call `use_local_store_images()`
before base reads the environment; production keeps the official images.
"""

import os

LOCAL_STORE_IMAGES = {
    "STORE_IMAGE_MARIADB": "mariadb",
    "STORE_IMAGE_REDIS": "redis",
    "STORE_IMAGE_WORDPRESS": "wordpress",
    "STORE_IMAGE_PHPMYADMIN": "phpmyadmin",
    "STORE_IMAGE_VARNISH": "varnish",
    "STORE_IMAGE_OPENSEARCH": "opensearch-standin",
    "STORE_IMAGE_MAGENTO": "magento-standin-web",
}


def use_local_store_images() -> None:
    for variable, image in LOCAL_STORE_IMAGES.items():
        os.environ.setdefault(variable, f"shophosting/{image}:local")
    # Debian has no WooCommerce package, so the local WordPress image has none (FACTS: no wordpress.org here).
    os.environ.setdefault("STORE_WOOCOMMERCE_REQUIRED", "false")
