"""The WordPress install on the real engine: a store that must have WooCommerce and has none fails its provision
with the reason in the job's error, a failed activation is an error too, and every store's wp-config carries
the platform's hardening whatever the image (here the local one, which has no WooCommerce)."""

import json

import pytest

from provisioning import docker_client
from provisioning.image_contract import WORDPRESS_INSTALLER
from provisioning.models import JobStep, ProvisioningJob
from provisioning.orders import store_order_paid
from stores.models import Store
from stores.services import store_create
from tests.test_object_cache import WORDPRESS_LOAD

pytestmark = [pytest.mark.django_db, pytest.mark.docker]


def _install(store, *, required: str) -> tuple[int, str]:
    """wp-install.php as the stack runs it, on an installed site: only the WooCommerce part has work left."""
    return docker_client.container_exec(
        name=f"{store.slug}-web",
        command=["php", WORDPRESS_INSTALLER],
        environment={"WORDPRESS_URL": f"http://{store.domain}", "SHOPHOSTING_REQUIRE_WOOCOMMERCE": required},
    )


def test_a_store_that_requires_woocommerce_fails_its_install_with_the_reason_and_is_hardened(
    settings,
    user_factory,
    woo_plan,
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    settings.STORE_WOOCOMMERCE_REQUIRED = True  # as production; the local image has no WooCommerce
    store = store_create(customer=user_factory(), plan=woo_plan, domain="shop-nowoo.test", site_title="No Woo")
    with django_capture_on_commit_callbacks(execute=True):
        job = store_order_paid(store_id=store.pk)
    run_provisioning_worker()
    job.refresh_from_db()
    store.refresh_from_db()

    assert job.status == ProvisioningJob.Status.FAILED
    assert store.status == Store.Status.FAILED
    install = job.steps.get(name="install")
    assert install.status == JobStep.Status.FAILED
    assert "WordPress install failed (exit 1)" in job.error
    assert "WooCommerce is required but not in this image" in job.error, job.error

    # The platform's hardening, from the stack's WORDPRESS_CONFIG_EXTRA, in the live store's wp-config: no file
    # editor even for the site's administrator, and no automatic updates.
    code = WORDPRESS_LOAD + (
        "wp_set_current_user(1);"
        " echo json_encode([DISALLOW_FILE_EDIT, AUTOMATIC_UPDATER_DISABLED, WP_AUTO_UPDATE_CORE,"
        " current_user_can('manage_options'), current_user_can('edit_plugins'), current_user_can('edit_themes')]);"
    )
    status, output = docker_client.container_exec(name=f"{store.slug}-web", command=["php", "-r", code])
    assert status == 0, output
    assert json.loads(output) == [True, True, False, True, False, False]

    # Not required (the local image's setting): the same site installs without WooCommerce and says so.
    assert _install(store, required="0") == (0, "WordPress is already installed\nWooCommerce is not in this image\n")

    # A WooCommerce that is there but fails to activate (here: it prints during activation) is an error too.
    plugin = "/var/www/html/wp-content/plugins/woocommerce"
    status, output = docker_client.container_exec(
        name=f"{store.slug}-web",
        command=[
            "php",
            "-r",
            f"mkdir('{plugin}'); file_put_contents('{plugin}/woocommerce.php',"
            " \"<?php\\n/*\\nPlugin Name: WooCommerce\\n*/\\necho 'broken';\\n\");",
        ],
    )
    assert status == 0, output
    status, output = _install(store, required="1")
    assert status == 1
    assert "WooCommerce activation failed: The plugin generated unexpected output." in output, output
