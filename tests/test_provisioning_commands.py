"""The operators' manage.py commands: thin, clear about bad input, --dry-run changes nothing."""

import pytest
from django.core.management import CommandError, call_command

from provisioning.models import ProvisioningJob
from stores.models import Store
from stores.services import store_create, store_place, store_transition

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "command", ["store_provision", "store_retry", "store_suspend", "store_resume", "store_teardown"]
)
def test_unknown_store_is_a_clear_error(command):
    with pytest.raises(CommandError, match="there is no store with id 999999"):
        call_command(command, "999999")


def test_dry_run_queues_nothing(user_factory, woo_plan, capsys):
    store = store_create(customer=user_factory(), plan=woo_plan, domain="dry.example.com")
    call_command("store_provision", str(store.pk), "--dry-run")
    assert f"would queue a provision job for store {store.pk}" in capsys.readouterr().out
    assert not ProvisioningJob.objects.exists()


def test_store_provision_queues_one_job(user_factory, woo_plan, capsys, django_capture_on_commit_callbacks):
    store = store_create(customer=user_factory(), plan=woo_plan, domain="cmd.example.com")
    call_command("store_provision", str(store.pk))
    call_command("store_provision", str(store.pk))  # a second call finds the same job
    assert ProvisioningJob.objects.filter(store=store).count() == 1
    store.refresh_from_db()
    assert store.status == Store.Status.QUEUED
    assert "queued provision job" in capsys.readouterr().out


def test_a_second_active_job_is_refused_with_the_reason(user_factory, woo_plan):
    store = store_create(customer=user_factory(), plan=woo_plan, domain="busy.example.com")
    call_command("store_provision", str(store.pk))
    with pytest.raises(CommandError, match="This store is busy: set up the store"):
        call_command("store_suspend", str(store.pk))


def test_teardown_of_a_store_that_cannot_be_deleted_is_refused(user_factory, woo_plan):
    store = store_create(customer=user_factory(), plan=woo_plan, domain="fresh.example.com")
    store_transition(store_id=store.pk, to=Store.Status.QUEUED)
    with pytest.raises(CommandError, match="store .* is queued; a teardown job needs it to be"):
        call_command("store_teardown", str(store.pk))


@pytest.mark.parametrize(
    ("command", "status"),
    [("store_retry", "queued"), ("store_suspend", "queued"), ("store_resume", "queued")],
)
def test_jobs_that_cannot_start_from_the_store_status_are_refused_up_front(user_factory, woo_plan, command, status):
    store = store_create(customer=user_factory(), plan=woo_plan, domain=f"{command.replace('_', '-')}.example.com")
    store_transition(store_id=store.pk, to=status)
    with pytest.raises(CommandError, match=f"is {status}; a .* job needs it to be"):
        call_command(command, str(store.pk))
    assert not ProvisioningJob.objects.filter(store=store).exists()


def test_hosts_shows_capacity_and_ports(user_factory, woo_plan, capsys):
    store = store_create(customer=user_factory(), plan=woo_plan, domain="h.example.com")
    store_transition(store_id=store.pk, to=Store.Status.QUEUED)
    port = store_place(store_id=store.pk).port
    call_command("hosts")
    out = capsys.readouterr().out
    assert "local (accepts new stores)" in out and "memory 1792 / 20480 MB" in out and str(port) in out


def test_images_build_rejects_unknown_names_and_lists_tags():
    with pytest.raises(CommandError, match="unknown image"):
        call_command("images_build", "nosuchimage")
    from io import StringIO

    out = StringIO()
    call_command("images_build", "redis", "--dry-run", stdout=out)
    assert out.getvalue().startswith("shophosting/redis:") and "shophosting/redis:local" in out.getvalue()


# The production recipes need Docker Hub, wordpress.org and repo.magento.com: only what would run is checked here.
PRODUCTION_STORE_IMAGES = {
    "woocommerce": {"web": "shophosting/wordpress-official:6"},
    "magento": {"web": "shophosting/magento:2.4"},
}
WOOCOMMERCE_SHA256 = "ab" * 32


def test_images_build_production_dry_run_lists_each_build_with_its_pinned_inputs(settings, tmp_path):
    from io import StringIO

    settings.STORE_IMAGES = PRODUCTION_STORE_IMAGES
    auth = tmp_path / "auth.json"
    auth.write_text('{"http-basic": {"repo.magento.com": {"username": "public-key", "password": "private-key"}}}')
    out = StringIO()
    call_command(
        "images_build",
        "--production",
        "--dry-run",
        f"--build-arg=WOOCOMMERCE_SHA256={WOOCOMMERCE_SHA256}",
        f"--magento-composer-auth={auth}",
        stdout=out,
    )
    wordpress, magento = out.getvalue().splitlines()
    assert wordpress.startswith(
        "wordpress-official -> shophosting/wordpress-official:6: DOCKER_BUILDKIT=1 docker build"
    )
    assert "wordpress-official/Dockerfile -t shophosting/wordpress-official:6" in wordpress
    assert "--build-arg=WOOCOMMERCE_VERSION=9.4.2" in wordpress
    assert f"--build-arg=WOOCOMMERCE_SHA256={WOOCOMMERCE_SHA256}" in wordpress
    assert wordpress.endswith("/deploy/images")  # its context: it shares wp-install.php with the local recipe
    assert magento.startswith("magento-official -> shophosting/magento:2.4: DOCKER_BUILDKIT=1 docker build")
    assert "--build-arg=MAGENTO_VERSION=2.4.7-p3" in magento
    assert f"--secret=id=composer_auth,src={auth}" in magento and magento.endswith("/deploy/images/magento-official")
    assert "private-key" not in out.getvalue()  # the keys' file is named, never read into the command


def test_images_build_production_refuses_what_it_cannot_build_as_pinned(settings, tmp_path):
    # The test settings name the local images: production recipes must never be tagged over them.
    with pytest.raises(
        CommandError, match="STORE_IMAGE_WORDPRESS names the local test image shophosting/wordpress:local"
    ):
        call_command("images_build", "--production", "--dry-run", "wordpress-official")
    settings.STORE_IMAGES = PRODUCTION_STORE_IMAGES
    # The recipe's checksum is empty until an operator records it from a download they checked.
    with pytest.raises(CommandError, match="WOOCOMMERCE_SHA256 is not pinned"):
        call_command("images_build", "--production", "--dry-run", "wordpress-official")
    with pytest.raises(CommandError, match="WOOCOMMERCE_SHA256 is not pinned"):
        call_command("images_build", "--production", "--dry-run", "--build-arg=WOOCOMMERCE_SHA256=abc")
    with pytest.raises(CommandError, match="magento-official needs --magento-composer-auth"):
        call_command("images_build", "--production", "--dry-run", "magento-official")
    with pytest.raises(CommandError, match="is no file"):
        call_command(
            "images_build", "--production", "--dry-run", "magento-official", f"--magento-composer-auth={tmp_path}/none"
        )
    sha = f"--build-arg=WOOCOMMERCE_SHA256={WOOCOMMERCE_SHA256}"
    with pytest.raises(CommandError, match="--build-arg MAGENTO_VERSION: no such ARG in wordpress-official"):
        call_command(
            "images_build", "--production", "--dry-run", "wordpress-official", sha, "--build-arg=MAGENTO_VERSION=2"
        )
    with pytest.raises(CommandError, match="expected NAME=VALUE"):
        call_command("images_build", "--production", "--dry-run", "--build-arg=WOOCOMMERCE_SHA256")
    with pytest.raises(CommandError, match="unknown production image"):
        call_command("images_build", "--production", "--dry-run", "wordpress")
    with pytest.raises(CommandError, match="go with --production"):
        call_command("images_build", "--dry-run", sha)
