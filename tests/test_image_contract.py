"""The store images' contract (provisioning/image_contract.py), read from the Dockerfiles themselves: the local
and the production recipe of a role keep the same one, and a recipe that drops a part is caught. No Docker."""

import pytest

from provisioning.image_contract import RECIPES, recipe_get, recipe_missing
from provisioning.stacks.woocommerce import WORDPRESS_HARDENING, WooCommerceStack
from stores.services import store_create


@pytest.mark.parametrize("spec", RECIPES, ids=lambda spec: spec.name)
def test_every_recipe_keeps_its_roles_contract(spec):
    assert spec.dockerfile.is_file()
    assert recipe_missing(spec) == []


def test_the_local_and_the_production_recipe_of_a_role_share_its_contract():
    local, production = recipe_get("wordpress"), recipe_get("wordpress-official")
    assert set(map(id, local.parts)) < set(map(id, production.parts))
    standin, magento = recipe_get("magento-standin-web"), recipe_get("magento-official")
    assert set(map(id, standin.parts)) < set(map(id, magento.parts))


def _altered(tmp_path, name: str, old: str, new: str):
    text = recipe_get(name).dockerfile.read_text()
    assert old in text
    altered = tmp_path / "Dockerfile"
    altered.write_text(text.replace(old, new))
    return altered


@pytest.mark.parametrize(
    ("name", "old", "new", "missing"),
    [
        (
            "wordpress-official",
            "COPY wordpress/wp-install.php /usr/local/share/shophosting/wp-install.php",
            "",
            "the installer at /usr/local/share/shophosting/wp-install.php",
        ),
        (
            "wordpress-official",
            "FROM wordpress:6-php8.2-apache",
            "FROM wordpress:6-php8.2-apache\nENV WORDPRESS_CONFIG_EXTRA=\"define('DISALLOW_FILE_EDIT', true);\"",
            "no ENV WORDPRESS_CONFIG_EXTRA",
        ),
        ("wordpress-official", "sha256sum -c -", "true", "WooCommerce at a pinned version"),
        ("wordpress-official", 'pecl install "redis-${PHPREDIS_VERSION}"', "true", "phpredis"),
        (
            "wordpress-official",
            "COPY wordpress/mu-plugins/ /usr/local/share/shophosting/mu-plugins/",
            "COPY wordpress/mu-plugins/ /var/www/html/wp-content/mu-plugins/",
            "the platform's mu-plugins",
        ),
        ("wordpress", "COPY mu-plugins/ /usr/local/share/shophosting/mu-plugins/", "", "the platform's mu-plugins"),
        ("wordpress", "COPY wp-config.php /var/www/html/wp-config.php", "", "WORDPRESS_DB_PASSWORD_FILE"),
        ("wordpress", "COPY wp-upgrade.php /usr/local/share/shophosting/wp-upgrade.php", "", "the upgrader"),
        (
            "wordpress-official",
            "COPY wordpress/wp-upgrade.php /usr/local/share/shophosting/wp-upgrade.php",
            "",
            "the upgrader",
        ),
        ("magento-standin-web", " /var/www/html/app/etc/env", "", "env.php"),
        ("magento-official", "mkdir -p /var/www/html/app/etc/env", "true", "env.php"),
        ("wordpress", 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]', "", "ENTRYPOINT docker-entrypoint.sh"),
        ("wordpress", "COPY object-cache.php /usr/local/share/shophosting/object-cache.php", "", "object cache"),
        ("magento-standin-web", "EXPOSE 8080", "EXPOSE 80", "serves on port 8080"),
        (
            "magento-official",
            "/usr/local/bin/shophosting-magento-install",
            "/usr/local/lib/shophosting-magento-install",
            "on the PATH",
        ),
        (
            "magento-official",
            "ARG COMPOSER_VERSION=2.7.9",
            "ARG COMPOSER_VERSION=2.7.9\nARG COMPOSER_AUTH=",
            "build secret",
        ),
    ],
)
def test_a_recipe_that_drops_a_part_is_caught(tmp_path, name, old, new, missing):
    found = recipe_missing(recipe_get(name), dockerfile=_altered(tmp_path, name, old, new))
    # (Dropping one line may take more than one part with it: the wp-config also evaluated the extra lines.)
    assert any(missing in part for part in found), found


@pytest.mark.django_db
def test_every_woocommerce_store_gets_the_hardening_and_the_installer_is_told_whether_woocommerce_is_required(
    user_factory, woo_plan, settings
):
    store = store_create(customer=user_factory(), plan=woo_plan, domain="hard.example.com")
    stack = WooCommerceStack(store)
    web = next(service for service in stack.services() if service.role == "web")
    extra = web.environment["WORDPRESS_CONFIG_EXTRA"]
    assert WORDPRESS_HARDENING in extra
    assert "define('DISALLOW_FILE_EDIT', true);" in extra and "define('AUTOMATIC_UPDATER_DISABLED', true);" in extra
    # Both images load the platform's mu-plugins (the mailer) from the image's directory the contract names.
    assert "define('WPMU_PLUGIN_DIR', '/usr/local/share/shophosting/mu-plugins');" in extra
    creds = {"admin_user": "a", "admin_email": "a@example.com", "admin_password": "p"}

    settings.STORE_WOOCOMMERCE_REQUIRED = True  # production: wordpress-official carries WooCommerce
    [(command, environment)] = stack.install_commands(creds)
    assert command == ["php", "/usr/local/share/shophosting/wp-install.php"]
    assert environment["SHOPHOSTING_REQUIRE_WOOCOMMERCE"] == "1"
    settings.STORE_WOOCOMMERCE_REQUIRED = False  # the local image (Debian has no WooCommerce)
    [(command, environment)] = stack.install_commands(creds)
    assert environment["SHOPHOSTING_REQUIRE_WOOCOMMERCE"] == "0"
