"""Updates and rollouts on the real engine: two image tags derived from the local WordPress image, built here
(a GOOD one that carries a version marker, and a BROKEN one whose front page fails and whose upgrade writes
to the database first), rolled out to live stores in batches. The good one updates both stores; the broken
one is put back with the store live on its old image and its data as before; the rollout pauses there."""

import textwrap

import pytest

from backups.models import BackupRun, RunStatus
from provisioning import docker_client
from provisioning.images import image_tags
from provisioning.models import ProvisioningJob, Rollout, RolloutStore, StoreUpdate, UpdateStatus
from provisioning.orders import store_order_paid
from provisioning.rollouts import rollout_cancel, rollout_create
from stores.models import Store
from stores.selectors import store_history
from stores.services import store_create
from tests.test_backups import insert_post, posts, sql
from tests.test_provisioning import fetch

pytestmark = [pytest.mark.django_db, pytest.mark.docker]
GOOD = "shophosting/wordpress-update-good:test"
BROKEN = "shophosting/wordpress-update-broken:test"
GOOD_MARKER = "wordpress-update-good 2"
# The broken version's upgrade writes to the database before anything checks it: a put-back that kept the
# database would keep these.
BROKEN_UPGRADE = """\
<?php
$_SERVER['HTTP_HOST'] = parse_url(getenv('WORDPRESS_URL'), PHP_URL_HOST);
$_SERVER['REQUEST_URI'] = '/';
require '/var/www/html/wp-load.php';
update_option('blogname', 'Broken by its upgrade');
$GLOBALS['wpdb']->query("DELETE FROM {$GLOBALS['wpdb']->posts} WHERE post_type = 'post'");
echo "broken upgrade wrote to the database\\n";
"""


@pytest.fixture(scope="module")
def update_images(docker_engine, store_images, tmp_path_factory):
    """GOOD and BROKEN, built on this checkout's WordPress image (by its content-hash tag, which no other
    checkout moves), and removed again at the end."""
    base, _ = image_tags("wordpress")
    good = tmp_path_factory.mktemp("good")
    (good / "Dockerfile").write_text(f"FROM {base}\nRUN echo '{GOOD_MARKER}' > /var/www/html/shophosting-version.txt\n")
    broken = tmp_path_factory.mktemp("broken")
    (broken / "wp-upgrade.php").write_text(BROKEN_UPGRADE)
    (broken / "Dockerfile").write_text(
        textwrap.dedent(f"""\
            FROM {base}
            COPY wp-upgrade.php /usr/local/share/shophosting/wp-upgrade.php
            RUN echo '<?php http_response_code(500); exit("broken on purpose");' > /var/www/html/index.php
            """)
    )
    docker_client.image_build(path=str(good), tags=[GOOD])
    docker_client.image_build(path=str(broken), tags=[BROKEN])
    yield
    for tag in (GOOD, BROKEN):
        docker_client.client().images.remove(tag, force=True)


def web_image(store: Store) -> str:
    return docker_client.container_image(name=f"{store.slug}-web")


def page(store: Store, path: str = "/"):
    return fetch(store.port, store.domain, path)


def test_a_good_image_rolls_out_to_two_stores_and_a_broken_one_is_put_back_with_the_store_live_and_its_data(
    update_images,
    user_factory,
    woo_plan,
    clean_test_stores,
    restic_repository,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    capture = django_capture_on_commit_callbacks

    def drain():
        """Run the provisioning queue until no job is left: each update's end queues the next batch."""
        for _ in range(10):
            with capture(execute=True):
                run_provisioning_worker()
            if not ProvisioningJob.objects.filter(status__in=ProvisioningJob.ACTIVE).exists():
                return
        raise AssertionError("jobs still queued")

    stores = []
    for number, title in ((1, "Ada's Shop"), (2, "Bob's Books")):
        customer = user_factory(email=f"update{number}@example.com")
        store = store_create(customer=customer, plan=woo_plan, domain=f"update{number}.test", site_title=title)
        with capture(execute=True):
            store_order_paid(store_id=store.pk)
        run_provisioning_worker()  # the first backup it would queue after its commit is not needed here
        store.refresh_from_db()
        assert store.status == Store.Status.ACTIVE, store.jobs.first().error
        insert_post(store, f"Written before the update {number}")
        stores.append(store)
    a, b = stores
    old_image = web_image(a)
    assert old_image == "shophosting/wordpress:local" == web_image(b)
    assert a.images.get(role="web").image == old_image  # recorded when the store was placed

    # The good image, one store per batch: the second store's update is queued when the first has ended.
    with capture(execute=True):
        rollout = rollout_create(platform="woocommerce", image=GOOD, batch_size=1, store_ids=[a.pk, b.pk])
    assert list(rollout.targets.values_list("status", flat=True)) == ["updating", "pending"]
    drain()
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.COMPLETED, rollout.status_note
    for store in stores:
        store.refresh_from_db()
        update = StoreUpdate.objects.get(store=store)
        assert update.status == UpdateStatus.UPDATED, update.job.error
        assert store.status == Store.Status.ACTIVE
        assert web_image(store) == GOOD and store.images.get(role="web").image == GOOD
        assert docker_client.container_image(name=f"{store.slug}-web-previous") is None  # removed once it worked
        assert page(store, "/shophosting-version.txt").text.strip() == GOOD_MARKER
        assert page(store).status == 200
        assert f"Written before the update {store.pk - a.pk + 1}" in posts(store)
        assert [event.message for event in store_history(store)][0] == "Updated to wordpress-update-good:test."
        # The pre-update backup is in the merchant's list, labelled as taken before an update.
        backup = BackupRun.objects.get(store=store, kind=BackupRun.Kind.PRE_UPDATE)
        assert backup.status == RunStatus.SUCCEEDED and backup.get_kind_display() == "Before an update"
        assert update.backup_reference == str(backup.pk)
        log = " ".join(line.message for step in update.job.steps.all() for line in step.log_lines.all())
        assert "database already at version" in log or "database upgraded from version" in log

    # The broken image: its front page fails after its upgrade wrote to the database. The store is put back
    # on the good image with its data, stays live, and the rollout pauses before the second store.
    title_before = "Ada&#039;s Shop"
    blogname = sql(a, "SELECT option_value FROM wp_options WHERE option_name='blogname'")
    with capture(execute=True):
        broken = rollout_create(platform="woocommerce", image=BROKEN, batch_size=1, store_ids=[a.pk, b.pk])
    drain()
    broken.refresh_from_db()
    a.refresh_from_db()
    assert broken.status == Rollout.Status.PAUSED
    assert "update1.test failed" in broken.status_note and "HTTP 500" in broken.status_note
    assert list(broken.targets.order_by("position").values_list("status", flat=True)) == [
        RolloutStore.Status.ROLLED_BACK,
        RolloutStore.Status.PENDING,
    ]
    update = StoreUpdate.objects.get(store=a, to_image=BROKEN)
    assert update.status == UpdateStatus.ROLLED_BACK
    assert update.job.status == ProvisioningJob.Status.FAILED and "the front page answers HTTP 500" in update.job.error
    upgrade_log = [line.message for line in update.job.steps.get(name="upgrade").log_lines.all()]
    assert "broken upgrade wrote to the database" in upgrade_log  # so the put-back had a database to undo
    assert update.job.steps.get(name="put_back").status == "succeeded"
    assert a.status == Store.Status.ACTIVE
    assert web_image(a) == GOOD and a.images.get(role="web").image == GOOD
    assert docker_client.container_image(name=f"{a.slug}-web-previous") is None  # the old one is back in place
    front = page(a)
    assert front.status == 200 and f"<title>{title_before}" in front.text
    assert page(a, "/shophosting-version.txt").text.strip() == GOOD_MARKER
    assert "Written before the update 1" in posts(a)  # the upgrade's DELETE is undone
    assert sql(a, "SELECT option_value FROM wp_options WHERE option_name='blogname'") == blogname
    assert store_history(a)[0].message == (
        "Update to wordpress-update-broken:test failed; your store was put back on wordpress-update-good:test."
    )
    assert web_image(b) == GOOD  # never reached

    # Staff cancel it: the store still waiting is not updated.
    rollout_cancel(rollout_id=broken.pk)
    assert list(broken.targets.order_by("position").values_list("status", flat=True)) == ["rolled_back", "cancelled"]


def test_magento_update_runs_setup_upgrade_keep_generated_verified_with_the_standin_web_image_only(
    docker_engine,
    store_images,
    user_factory,
    woo_plan,  # seeds the whole plan catalogue
    clean_test_stores,
    restic_repository,
    tmp_path,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
):
    """Magento is not obtainable here: the STAND-IN web image records the `bin/magento setup:upgrade` it is
    given. Proves the update's wiring for Magento (the upgrade command, Varnish routing to the new web
    container, the admin login check); not Magento's own upgrade."""
    from billing.models import Plan
    from provisioning.updates import store_update_request

    base, _ = image_tags("magento-standin-web")
    standin = "shophosting/magento-standin-web-update:test"
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nLABEL org.opencontainers.image.version=2\n")
    docker_client.image_build(path=str(tmp_path), tags=[standin])
    try:
        plan = Plan.objects.get(slug="magento-commerce-core")
        store = store_create(customer=user_factory(), plan=plan, domain="mage-update.test", site_title="Mage Shop")
        with django_capture_on_commit_callbacks(execute=True):
            store_order_paid(store_id=store.pk)
        run_provisioning_worker()
        store.refresh_from_db()
        assert store.status == Store.Status.ACTIVE, store.jobs.first().error

        with django_capture_on_commit_callbacks(execute=True):
            update = store_update_request(store_id=store.pk, image=standin)
        run_provisioning_worker()
        update.refresh_from_db()
        assert update.status == UpdateStatus.UPDATED, update.job.error
        assert web_image(store) == standin
        code, state = docker_client.container_exec(
            name=f"{store.slug}-web", command=["cat", "/var/www/html/app/etc/env/standin-install.json"]
        )
        assert code == 0 and '"upgrades": 1' in state and '"last_upgrade_options": ["keep-generated"]' in state
        front = page(store)  # through Varnish, which now reaches the new web container
        assert front.status == 200 and "<title>Mage Shop</title>" in front.text
        assert front.headers["X-Varnish-Backend"] == "web:8080"
    finally:
        docker_client.labelled_objects_remove(label=clean_test_stores)
        docker_client.client().images.remove(standin, force=True)
