"""django-rq entry points for backups: ids in, one service call each."""


def backup_run_job(run_id: int):
    from backups.services import backup_execute

    backup_execute(run_id=run_id)


def restore_run_job(restore_id: int):
    from backups.services import restore_execute

    restore_execute(restore_id=restore_id)


def backup_runs_recover():
    from backups.services import runs_recover

    return runs_recover()


def backups_enqueue_due():
    from backups.services import backups_enqueue_due

    return backups_enqueue_due()


def backups_prune():
    from backups.services import backups_prune

    return backups_prune()


def snapshots_reconcile():
    from backups.services import snapshots_reconcile

    return snapshots_reconcile()


def repository_check():
    from backups import restic

    return restic.check()


def backups_verify():
    from backups.services import backups_verify

    return [run.pk for run in backups_verify()]


def system_backup_run_job(run_id: int):
    from backups.services import system_backup_execute

    system_backup_execute(run_id=run_id)


def system_backup():
    from backups.models import BackupRun
    from backups.services import system_backup_enqueue

    return system_backup_enqueue(kind=BackupRun.Kind.SYSTEM).pk


def code_backup():
    from backups.models import BackupRun
    from backups.services import system_backup_enqueue

    return system_backup_enqueue(kind=BackupRun.Kind.CODE).pk
