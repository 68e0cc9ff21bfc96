"""Restoring a lost host's stores on other hosts from their latest backups (issue #20, "A host that goes away").

Staff start it from the host admin while the host's engine does not answer (its platform incident is open and
its stores are unreachable: provisioning/hosts.py). `host_recovery_start` takes every unreachable store of the
host: one with a kept backup gets a `restore_elsewhere` job; one without (or a staging copy, or a store busy
with another operation) is reported as skipped and stays unreachable where it is. Before anything is recorded,
placement is tried for all of them at once inside a savepoint that is rolled back: if the other hosts have no
room for every store, nothing is started.

The job (the `backups` queue, since it runs restic) puts up the maintenance page, places the store on another
host (provisioning.lost_hosts.store_rehome: placement as for a new store, never the lost host; what it left
there is removed by that host's heartbeat once it answers), gives that host the store's images, builds the
network, volumes, database and cache with the store's own credentials (the provision steps), puts back the
database and files from the backup (the restore's own functions), starts the web server and waits for HTTP,
and routes the vhost to the new host's private address and port. Its success marks the store active with a
plain message naming the backup's time: what the merchant may have to redo.
"""

import shutil

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from backups.models import RECOVERY_ALLOWED_FROM, HostRecovery, HostRecoveryEvent, HostRecoveryStore
from backups.selectors import store_backup_latest
from backups.services.restore import database_put_back, files_put_back
from backups.services.stack_io import staging_directory, staging_path
from provisioning import docker_client
from provisioning.exceptions import JobConflict
from provisioning.kinds import Log
from provisioning.lost_hosts import host_is_away, hosts_away_ids, store_rehome
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue
from provisioning.stacks import stack_for
from provisioning.steps import wait_db
from shophosting.core.transitions import transition
from stores.exceptions import InvalidTransition, NoCapacity
from stores.models import Host, Store
from stores.services import store_place, store_transition

KIND = "restore_elsewhere"
R = HostRecoveryStore.Status
S = Store.Status


class RecoveryRefused(Exception):
    """A host recovery that cannot start, in a sentence for staff; nothing was changed."""


class _TrialOnly(Exception):
    """Rolls back the savepoint in which placement was only tried."""


def row_transition(row_id: int, to: str, *, note: str = "", actor: User | None = None, **fields) -> HostRecoveryStore:
    """The one writer of HostRecoveryStore.status: the shared transition (row lock, an event row)."""
    return transition(
        HostRecoveryStore,
        row_id,
        to,
        allowed_from=RECOVERY_ALLOWED_FROM,
        event_model=HostRecoveryEvent,
        event_link="recovery_store",
        actor=actor,
        note=note[:5000],
        **fields,
    )


def _row_create(recovery: HostRecovery, store: Store, status: str, *, actor, reason: str = "", **fields):
    row = HostRecoveryStore.objects.create(recovery=recovery, store=store, status=status, reason=reason, **fields)
    HostRecoveryEvent.objects.create(recovery_store=row, new_status=status, actor=actor, note=reason[:5000])
    return row


def _skip_reason(store: Store, host: Host) -> str:
    if store.staging_of_id:
        return "a staging copy: make a new one from its live store once that is restored"
    return f"no backup to restore from: it stays unreachable on {host.name} until that host answers again"


def _room_check(host: Host, stores: list[Store]) -> None:
    """Place every store on the other hosts, all together, and roll that back: placement alone says whether
    they fit (capacity, draining, accepts-new-stores, free ports), with its own words when they do not."""
    away = {host.pk} | hosts_away_ids()
    try:
        with transaction.atomic():
            for store in stores:
                store_place(store_id=store.pk, exclude_host_ids=away)
            raise _TrialOnly
    except _TrialOnly:
        return
    except NoCapacity as exc:
        raise RecoveryRefused(
            f"The other hosts have no room for every store of {host.name} ({exc}); nothing was started. "
            "Add a host, or let one accept new stores, and try again."
        ) from None


@transaction.atomic
def host_recovery_start(*, host_id: int, actor: User | None) -> HostRecovery:
    """Restore every unreachable store of a host that does not answer on other hosts from its latest backup:
    a HostRecovery with a row per store, and a `restore_elsewhere` job per store with a backup (queued after
    the commit). Refused (RecoveryRefused, nothing written) when the host answers, has no unreachable store,
    has a recovery under way, or the other hosts lack room for them all."""
    host = Host.objects.select_for_update().get(pk=host_id)
    if not host_is_away(host.pk):
        raise RecoveryRefused(
            f"{host.name} answers (no open incident for its engine): its stores run there. Restoring from backups "
            "is for a host that does not answer."
        )
    under_way = HostRecoveryStore.objects.filter(recovery__host=host, status__in=HostRecoveryStore.ACTIVE).first()
    if under_way is not None:
        raise RecoveryRefused(
            f"A restore of {host.name}'s stores is under way (recovery #{under_way.recovery_id}); let it finish first."
        )
    stores = list(Store.objects.filter(host=host, status=S.UNREACHABLE).select_related("plan").order_by("pk"))
    if not stores:
        raise RecoveryRefused(f"{host.name} has no unreachable stores: there is nothing to restore.")
    backups = {store.pk: None if store.staging_of_id else store_backup_latest(store) for store in stores}
    _room_check(host, [store for store in stores if backups[store.pk] is not None])
    recovery = HostRecovery.objects.create(host=host, created_by=actor)
    for store in stores:
        backup = backups[store.pk]
        if backup is None:
            _row_create(recovery, store, R.SKIPPED, actor=actor, reason=_skip_reason(store, host))
            continue
        try:
            job = job_enqueue(store_id=store.pk, kind=KIND, actor=actor)
        except (JobConflict, InvalidTransition) as exc:
            _row_create(recovery, store, R.SKIPPED, actor=actor, reason=f"not restored: {exc}")
            continue
        _row_create(recovery, store, R.PENDING, actor=actor, backup=backup, job=job)
    return recovery


# --- The job's steps ----------------------------------------------------------------------------------------


def _row(job_id: int) -> HostRecoveryStore:
    return HostRecoveryStore.objects.select_related("recovery__host", "backup").get(job_id=job_id)


def _staging_name(row: HostRecoveryStore) -> str:
    return f"recovery-{row.recovery_id}-store-{row.store_id}"


def step_place(store: Store, log: Log, *, job_id: int) -> None:
    row = _row(job_id)
    lost = row.recovery.host
    placed = store_rehome(
        store_id=store.pk, lost_host_id=lost.pk, reason=f"restored elsewhere by recovery #{row.recovery_id}"
    )
    HostRecoveryStore.objects.filter(pk=row.pk).update(target_host=placed.host)
    log(f"placed on host {placed.host.name}, web port {placed.host.bind_address}:{placed.port}")
    log(f"what the store left on {lost.name} is removed when that host answers again")


def step_images(store: Store, log: Log) -> None:
    """The new host gets the images the store runs from the platform's engine (never from a registry), and the
    base image the restore's helper containers run."""
    images = {service.image for service in stack_for(store).services(include_optional=True)}
    images = sorted(images | {settings.DOCKER_BASE_IMAGE})
    for image in images:
        copied = docker_client.image_copy(image=image, source=None, target=store.host.engine)
        log(f"{image}: {'copied to' if copied else 'already on'} {store.host.name}")


def step_database(store: Store, log: Log, *, job_id: int) -> None:
    row = _row(job_id)
    wait_db(store, log, timeout=settings.STORE_WEB_READY_TIMEOUT)
    log(f"from backup #{row.backup_id} (snapshot {row.backup.snapshot_id[:8]}, {_backup_time(row)})")
    database_put_back(store, log, snapshot_id=row.backup.snapshot_id, staging=staging_directory(_staging_name(row)))


def step_files(store: Store, log: Log, *, job_id: int) -> None:
    row = _row(job_id)
    files_put_back(store, log, snapshot_id=row.backup.snapshot_id, staging=staging_directory(_staging_name(row)))


# --- The kind's hooks (in the engine's transaction that moves the job) ----------------------------------------


def _backup_time(row: HostRecoveryStore) -> str:
    # When the backup began: what was written while it ran may or may not be in it, so the merchant is told
    # the earlier time.
    when = row.backup.started_at or row.backup.finished_at
    return f"{when:%-d %B %Y at %H:%M} UTC"


def restored_message(row: HostRecoveryStore) -> str:
    return (
        "The server your store ran on stopped answering, so we restored your store (its database and files) on "
        f"another server from its backup of {_backup_time(row)}. Anything added or changed after that time "
        "(orders, customers, posts, uploads) is not in it; please check and redo what is missing. Your store's "
        "addresses stay the same."
    )


def on_start(job_id: int) -> None:
    row_transition(_row(job_id).pk, R.RESTORING, started_at=timezone.now())


def on_success(job_id: int) -> None:
    row = _row(job_id)
    row_transition(row.pk, R.RESTORED, finished_at=timezone.now())
    host = Store.objects.select_related("host").get(pk=row.store_id).host
    store_transition(
        store_id=row.store_id,
        to=S.ACTIVE,
        note=f"restored on host {host.name} from backup #{row.backup_id} (recovery #{row.recovery_id})",
        message=restored_message(row),
    )


def on_failure(job_id: int, summary: str) -> None:
    row = _row(job_id)
    if row.status not in HostRecoveryStore.ACTIVE:
        return
    store = Store.objects.get(pk=row.store_id)
    if store.status == S.ACTIVE and store.host_id == row.recovery.host_id:
        row_transition(
            row.pk,
            R.SKIPPED,
            note=summary,
            reason=f"{row.recovery.host.name} answered again before the store was moved; it runs there",
            finished_at=timezone.now(),
        )
        return
    row_transition(row.pk, R.FAILED, note=summary, reason=summary[:10000], finished_at=timezone.now())


def after(job_id: int, succeeded: bool) -> None:
    shutil.rmtree(staging_path(_staging_name(_row(job_id))), ignore_errors=True)


def retry(job_id: int, actor: User | None) -> ProvisioningJob:
    """A failed store of a recovery again (the admin's Retry on its job): a new job, the row pending again.
    Its steps find their done work done: a store placed elsewhere already keeps that place."""
    row = _row(job_id)
    with transaction.atomic():
        job = job_enqueue(store_id=row.store_id, kind=KIND, actor=actor)
        row_transition(row.pk, R.PENDING, note=f"retried as job #{job.pk}", actor=actor, job=job, finished_at=None)
    return job


def timeout_seconds() -> int:
    return 2 * settings.RESTIC_TIMEOUT + 2 * settings.STORE_WEB_READY_TIMEOUT + 900
