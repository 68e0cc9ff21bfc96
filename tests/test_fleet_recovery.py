"""A host that goes away, and its stores restored on another host from their latest backups (issue #20, item 6):
the host admin's bulk action, its progress page, the `restore_elsewhere` job on two real engines with a real
restic repository, and the lost engine's return, whose stale stack must neither run nor be served."""

import html
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupRun, HostRecovery, HostRecoveryStore, RunStatus
from provisioning import docker_client
from provisioning.care.platform import platform_check_record
from provisioning.hosts import host_heartbeat
from provisioning.models import StaleStack
from stores.models import Host, Store
from stores.services import store_place
from tests import test_fleet

two_hosts = test_fleet.two_hosts  # the platform's engine and the second one, registered with its check
S = Store.Status
R = HostRecoveryStore.Status
ACTION = "recover_selected"


def _recover(client, host: Host):
    return client.post(
        reverse("admin:stores_host_changelist"), {"action": ACTION, "_selected_action": [host.pk]}, follow=True
    )


def _messages(response) -> str:
    return html.unescape(" | ".join(str(message) for message in response.context["messages"]))


# --- Bad input: refused in words, nothing changed (records only, no engine is asked) ------------------------


def _lost_and_spare() -> tuple[Host, Host]:
    """Two hosts of records only (no engine is asked): "lost", which takes stores, and "spare", which does not
    yet; the platform's own host takes no part."""
    Host.objects.update(active=False)
    return tuple(
        Host.objects.create(
            name=name,
            docker_url=f"tcp://{name}.invalid:2376",
            bind_address="127.0.0.1",
            port_range_start=23000 + 100 * index,
            port_range_end=23099 + 100 * index,
            memory_capacity_mb=8192,
            cpu_capacity=16,
            active=name == "lost",
        )
        for index, name in enumerate(("lost", "spare"))
    )


def _backup_recorded(store: Store, snapshot_id: str = "ab" * 32) -> BackupRun:
    """A kept snapshot of the store, as the reconcile job records one."""
    began = timezone.now() - timedelta(hours=2)
    return BackupRun.objects.create(
        store=store,
        kind=BackupRun.Kind.SCHEDULED,
        status=RunStatus.SUCCEEDED,
        snapshot_id=snapshot_id,
        started_at=began,
        finished_at=began,
    )


@pytest.mark.django_db
def test_the_action_refuses_a_host_that_answers_has_no_unreachable_store_or_lacks_room_elsewhere_and_changes_nothing(
    client, staff_user, store_in_status, settings
):
    settings.CARE_INCIDENT_THRESHOLD = 1
    lost, spare = _lost_and_spare()
    backed_up, without_backup = (store_place(store_id=store_in_status("active").pk, host_id=lost.pk) for _ in range(2))
    _backup_recorded(backed_up)
    client.force_login(staff_user)

    # The host answers: its stores run there; nothing to restore from backups.
    assert "lost answers (no open incident for its engine)" in _messages(_recover(client, lost))

    # Its engine stopped answering (the incident is open), but its stores are not marked unreachable yet.
    platform_check_record(component=f"docker.host-{lost.pk}", ok=False, output="does not answer")
    assert "lost has no unreachable stores: there is nothing to restore." in _messages(_recover(client, lost))

    host_heartbeat(host_id=lost.pk, ok=False)
    assert set(Store.objects.filter(host=lost).values_list("status", flat=True)) == {S.UNREACHABLE}

    # No other host takes new stores: no room anywhere else, and nothing is started.
    message = _messages(_recover(client, lost))
    assert "The other hosts have no room for every store of lost (no host accepting new stores has" in message
    assert "nothing was started" in message
    assert not HostRecovery.objects.exists()
    backed_up_place = (backed_up.host_id, backed_up.port)
    backed_up.refresh_from_db()
    assert (backed_up.host_id, backed_up.port, backed_up.status) == (*backed_up_place, S.UNREACHABLE)
    assert not backed_up.jobs.exists() and not StaleStack.objects.exists()

    # With room on the spare host: the store with a backup is queued, the one without is reported skipped.
    Host.objects.filter(pk=spare.pk).update(active=True)
    response = _recover(client, lost)
    recovery = HostRecovery.objects.get()
    assert response.redirect_chain[-1][0] == reverse("admin:backups_hostrecovery_change", args=[recovery.pk])
    assert "lost: 1 store(s) queued to be restored elsewhere" in _messages(response)
    rows = {row.store_id: row for row in recovery.stores.all()}
    assert rows[backed_up.pk].status == R.PENDING and rows[backed_up.pk].backup.snapshot_id == "ab" * 32
    assert rows[backed_up.pk].job.kind == "restore_elsewhere" and rows[backed_up.pk].job.status == "queued"
    assert rows[without_backup.pk].status == R.SKIPPED and rows[without_backup.pk].job is None
    assert "no backup to restore from" in rows[without_backup.pk].reason
    assert [event.new_status for event in rows[backed_up.pk].events.all()] == [R.PENDING]
    page = html.unescape(response.content.decode())
    assert "1 pending, 1 skipped" in page and "no backup to restore from" in page
    assert '<meta http-equiv="refresh" content="5">' in page  # follows itself while under way
    # The placement was only tried: the store stays where it is until its job moves it.
    backed_up.refresh_from_db()
    assert (backed_up.host_id, backed_up.port) == backed_up_place

    # Once more while it is under way: refused.
    assert f"A restore of lost's stores is under way (recovery #{recovery.pk})" in _messages(_recover(client, lost))
    assert HostRecovery.objects.count() == 1


@pytest.mark.django_db
def test_a_store_whose_host_answers_before_it_moves_is_skipped_and_one_with_no_room_left_fails_unchanged_then_retries(
    staff_user, store_in_status, settings
):
    from backups.services.recovery import host_recovery_start
    from provisioning.services import job_execute, job_retry
    from stores.exceptions import NoCapacity
    from stores.services import store_transition

    settings.CARE_INCIDENT_THRESHOLD = 1
    lost, spare = _lost_and_spare()
    Host.objects.filter(pk=spare.pk).update(active=True)
    back, no_room = (store_place(store_id=store_in_status("active").pk, host_id=lost.pk) for _ in range(2))
    for store in (back, no_room):
        _backup_recorded(store)
    platform_check_record(component=f"docker.host-{lost.pk}", ok=False, output="does not answer")
    host_heartbeat(host_id=lost.pk, ok=False)
    recovery = host_recovery_start(host_id=lost.pk, actor=staff_user)
    rows = {row.store_id: row for row in recovery.stores.all()}

    # Its host answers before the job begins: the heartbeat brings the store back there, and its job stops
    # before any step; the store is reported skipped, still on its host.
    store_transition(store_id=back.pk, to=S.ACTIVE, note="host lost answers again")
    job_execute(job_id=rows[back.pk].job_id)
    row = HostRecoveryStore.objects.get(pk=rows[back.pk].pk)
    assert row.status == R.SKIPPED and "lost answered again before the store was moved" in row.reason
    assert Store.objects.get(pk=back.pk).host == lost

    # The other hosts filled up meanwhile: its job fails at placement and nothing of the store changed.
    Host.objects.filter(pk=spare.pk).update(active=False)
    with pytest.raises(NoCapacity):
        job_execute(job_id=rows[no_room.pk].job_id)
    row = HostRecoveryStore.objects.get(pk=rows[no_room.pk].pk)
    assert row.status == R.FAILED and "no host accepting new stores has" in row.reason
    unchanged = Store.objects.get(pk=no_room.pk)
    assert (unchanged.host, unchanged.port, unchanged.status) == (lost, no_room.port, S.UNREACHABLE)
    assert not StaleStack.objects.exists() and row.target_host is None

    # With room again, staff retry its job: the same row, pending on a new job.
    Host.objects.filter(pk=spare.pk).update(active=True)
    job = job_retry(job_id=row.job_id, actor=staff_user)
    row.refresh_from_db()
    assert (row.status, row.job, job.kind) == (R.PENDING, job, "restore_elsewhere")
    assert [e.new_status for e in row.events.all()] == [R.PENDING, R.RESTORING, R.FAILED, R.PENDING]


@pytest.mark.django_db
def test_support_staff_are_not_offered_the_action(client, store_in_status):
    from accounts.roles import Role
    from accounts.services import staff_user_ensure

    support, _ = staff_user_ensure(email="support@example.com", role=Role.SUPPORT, password="support password 123")
    admin_role, _ = staff_user_ensure(email="ops@example.com", role=Role.ADMIN, password="ops password 1234")
    for user, offered in ((support, False), (admin_role, True)):
        client.force_login(user)
        page = client.get(reverse("admin:stores_host_changelist"))
        assert (ACTION in page.content.decode()) is offered


# --- Two real engines: the store comes up on host 1 from its backup ------------------------------------------


def _sql(store: Store, statement: str) -> str:
    from provisioning.stacks.base import DB_ROOT_CLIENT_ENV

    code, output = docker_client.container_exec(
        name=f"{store.slug}-db",
        command=["sh", "-c", f'{DB_ROOT_CLIENT_ENV} mariadb -uroot wordpress -N -B -e "$0"', statement],
        base_url=store.host.engine,
    )
    assert code == 0, output
    return output.strip()


def _post(store: Store, title: str) -> None:
    columns = "post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt, post_status, post_name,"
    columns += " to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, post_type"
    slug = title.lower().replace(" ", "-")
    values = f"1, NOW(), NOW(), 'Body of {title}', '{title}', '', 'publish', '{slug}', '', '', NOW(), NOW(), ''"
    _sql(store, f"INSERT INTO wp_posts ({columns}) VALUES ({values}, 'post')")  # noqa: S608


@pytest.mark.docker
@pytest.mark.django_db
def test_a_lost_hosts_store_comes_up_on_another_host_from_its_latest_backup_and_its_old_stack_goes_when_it_returns(
    two_hosts,
    second_engine,
    user_factory,
    woo_plan,
    store_in_status,
    store_images,
    clean_test_stores,
    django_capture_on_commit_callbacks,
    run_provisioning_worker,
    run_backups_worker,
    client,
    staff_user,
    settings,
):
    from backups.services.backup import backup_enqueue
    from backups.services.recovery import restored_message
    from provisioning.orders import store_order_paid
    from shophosting.health import platform_checks_run
    from stores.services import store_create
    from tests.test_provisioning import NGINX_PORT, fetch_until

    capture = django_capture_on_commit_callbacks
    local, remote = two_hosts
    Host.objects.filter(pk=local.pk).update(active=False)  # the store goes to the second engine
    store = store_create(customer=user_factory(), plan=woo_plan, domain="lost.test", site_title="Lost Shop")
    with capture(execute=True):
        store_order_paid(store_id=store.pk)
    run_provisioning_worker()
    store.refresh_from_db()
    assert store.status == S.ACTIVE and store.host == remote, store.jobs.last().error
    without_backup = store_in_status("active")  # a record only: never built, never backed up
    store_place(store_id=without_backup.pk, host_id=remote.pk)

    _post(store, "Written before the backup")
    with capture(execute=True):
        backup = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL)
    run_backups_worker()
    backup.refresh_from_db()
    assert backup.status == RunStatus.SUCCEEDED, backup.error
    _post(store, "Written after the backup")
    Host.objects.filter(pk=local.pk).update(active=True)  # host 1 takes stores again: the restore's target

    settings.CARE_INCIDENT_THRESHOLD = 1
    second_engine.stop()
    try:
        platform_checks_run()  # the incident opens, the host's stores are unreachable
        store.refresh_from_db()
        without_backup.refresh_from_db()
        assert (store.status, without_backup.status) == (S.UNREACHABLE, S.UNREACHABLE)

        client.force_login(staff_user)
        started = time.monotonic()
        with capture(execute=True):
            response = _recover(client, remote)
        assert "engine2: 1 store(s) queued" in _messages(response)
        run_backups_worker()
        restore_seconds = time.monotonic() - started

        recovery = HostRecovery.objects.get(host=remote)
        row = recovery.stores.get(store=store)
        assert row.status == R.RESTORED, f"{row.reason}\n{row.job.error}"
        assert (row.backup, row.target_host) == (backup, local)
        assert [event.new_status for event in row.events.all()] == [R.PENDING, R.RESTORING, R.RESTORED]
        skipped = recovery.stores.get(store=without_backup)
        assert skipped.status == R.SKIPPED and "no backup to restore from" in skipped.reason

        store.refresh_from_db()
        assert store.status == S.ACTIVE and store.host == local
        assert store.status_message == restored_message(row)
        assert f"{(backup.started_at):%-d %B %Y at %H:%M} UTC" in store.status_message
        # Its post from before the backup is there; the one written after it is what was lost.
        titles = _sql(store, "SELECT post_title FROM wp_posts WHERE post_type='post' ORDER BY ID").splitlines()
        assert "Written before the backup" in titles and "Written after the backup" not in titles
        # Served through nginx under its domain, proxied to host 1's address and the new port.
        vhost = (Path(settings.NGINX_SITES_DIR) / f"{store.proxy_key}.conf").read_text()
        assert f"proxy_pass http://127.0.0.1:{store.port};" in vhost
        page = fetch_until(NGINX_PORT, store.domain, "Written before the backup", timeout=30)
        assert page.status == 200 and "Written before the backup" in page.text

        progress = html.unescape(
            client.get(reverse("admin:backups_hostrecovery_change", args=[recovery.pk])).content.decode()
        )
        assert "1 restored, 1 skipped" in progress and 'http-equiv="refresh"' not in progress
        stale = StaleStack.objects.get(store=store)
        assert (stale.host, stale.removed_at) == (remote, None)
    finally:
        second_engine.start()

    # The engine restarts the old stack (restart policy unless-stopped); the next round removes it, and the
    # store stays active on host 1. The store without a backup has no container there: still unreachable.
    deadline = time.monotonic() + 60
    while docker_client.container_state(name=f"{store.slug}-web", base_url=remote.engine)[0] != "running":
        assert time.monotonic() < deadline, "the old web container did not start again"
        time.sleep(0.5)
    platform_checks_run()
    assert docker_client.labelled_objects(label=f"shophosting.store={store.object_key}", base_url=remote.engine) == {
        "containers": [],
        "networks": [],
        "volumes": [],
    }
    stale.refresh_from_db()
    assert stale.removed_at is not None and stale.report.startswith("removed 3 containers")
    store.refresh_from_db()
    assert (store.status, store.host) == (S.ACTIVE, local)
    assert "engine2 answers again; its old stack there: removed" in store.events.last().note
    without_backup.refresh_from_db()
    assert without_backup.status == S.UNREACHABLE
    page = fetch_until(NGINX_PORT, store.domain, "Written before the backup", timeout=10)
    assert page.status == 200 and "Written before the backup" in page.text
    print(f"\nrestore elsewhere (action to restored, one WooCommerce store): {restore_seconds:.1f} s")
