"""django-rq entry points for backups: ids in, one service call each. Store backups, restores and
verifications are jobs of the engine (provisioning.jobs.provisioning_job_run runs them)."""

from backups.models import BackupRun


def platform_runs_recover():
    from backups.services.system import system_runs_recover  # lazy: the services enqueue these entry points

    return system_runs_recover()


def backups_enqueue_due():
    from backups.services.retention import backups_enqueue_due

    return backups_enqueue_due()


def backups_prune():
    from backups.services.retention import backups_prune

    return backups_prune()


def snapshots_reconcile():
    from backups.services.reconcile import snapshots_reconcile

    return snapshots_reconcile()


def repository_check():
    from backups.services.repository import repository_check

    return repository_check().ok


def backups_verify():
    from backups.services.verify import backups_verify

    return [run.pk for run in backups_verify()]


def first_backup_take(store_id: int):
    from backups.services.backup import first_backup_take

    run = first_backup_take(store_id=store_id)
    return run.pk if run else None


def system_backup_run_job(run_id: int):
    from backups.services.system import system_backup_execute

    system_backup_execute(run_id=run_id)


def system_backup():
    from backups.services.system import system_backup_enqueue

    return system_backup_enqueue(kind=BackupRun.Kind.SYSTEM).pk


def code_backup():
    from backups.services.system import system_backup_enqueue

    return system_backup_enqueue(kind=BackupRun.Kind.CODE).pk


def transfers_clean_up():
    from backups.services.transfers import transfers_clean_up

    return transfers_clean_up()
