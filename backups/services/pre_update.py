"""The backups side of an update's safety net (provisioning.safety, registered in BackupsConfig.ready()): the
backup an update takes before it changes anything, with the same steps as a restore's pre-restore backup,
and the data put back from it when the update fails, with the same steps as a restore."""

import shutil

from backups.models import BackupRun, RunStatus
from backups.services.restore import backup_in_place, database_put_back, files_put_back
from backups.services.stack_io import staging_directory
from provisioning.kinds import Log
from provisioning.models import ProvisioningJob
from stores.models import Store


def _store(store_id: int) -> Store:
    return Store.objects.select_related("host", "plan", "customer").get(pk=store_id)


# The kinds of backup this safety net takes and puts back, and the change each is named after in its errors.
SAFETY_NET_KINDS = {BackupRun.Kind.PRE_UPDATE: "update", BackupRun.Kind.PRE_PUSH: "push"}


def pre_update_backup_take(
    *, store_id: int, job_id: int, reason: str, log: Log, kind: str = BackupRun.Kind.PRE_UPDATE
) -> str:
    """A `pre-update` backup of the store as it is now, listed among the merchant's backups ("Before an
    update"); returns its BackupRun id, which the update keeps to put the data back. A push from staging
    (backups.staging, which calls this directly) takes a `pre-push` one ("Before a push from staging")."""
    job = ProvisioningJob.objects.select_related("created_by").get(pk=job_id)
    run = backup_in_place(
        _store(store_id),
        log,
        kind=kind,
        created_by=job.created_by,
        job_id=job_id,
        note=reason,
        what=SAFETY_NET_KINDS[kind],
    )
    log(f"backup #{run.pk} (snapshot {run.snapshot_id[:8]}) keeps the store as it was")
    return str(run.pk)


def pre_update_backup_restore(*, store_id: int, reference: str, log: Log) -> None:
    """The store's database and files become those of its pre-update (or pre-push) backup `reference`."""
    run = BackupRun.objects.get(
        pk=int(reference), store_id=store_id, kind__in=list(SAFETY_NET_KINDS), status=RunStatus.SUCCEEDED
    )
    store = _store(store_id)
    staging = staging_directory(f"pre-update-{run.pk}-put-back")
    try:
        database_put_back(store, log, snapshot_id=run.snapshot_id, staging=staging)
        files_put_back(store, log, snapshot_id=run.snapshot_id, staging=staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"database and files put back from backup #{run.pk} (snapshot {run.snapshot_id[:8]})")
