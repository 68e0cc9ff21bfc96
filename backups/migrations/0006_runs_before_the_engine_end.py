"""Store backups and restores that were queued or running when the platform moved to the job engine have no
job: no worker runs them any more (their RQ entry points are gone), and nothing would ever end them. They end
here as failed, with an event saying why, so the backups page does not show them under way for ever; the next
scheduled backup takes the store. Platform backups (no store) keep running as before."""

from django.db import migrations
from django.utils import timezone

WHY = "stopped by the upgrade to the job engine; ask for it again"


def end_runs_without_a_job(apps, schema_editor):
    BackupRun = apps.get_model("backups", "BackupRun")
    RestoreRun = apps.get_model("backups", "RestoreRun")
    BackupEvent = apps.get_model("backups", "BackupEvent")
    now = timezone.now()
    active = ("queued", "running")
    for run in BackupRun.objects.filter(status__in=active, job=None).exclude(store=None):
        BackupEvent.objects.create(backup_run=run, old_status=run.status, new_status="failed", note=WHY)
        BackupRun.objects.filter(pk=run.pk).update(status="failed", error=WHY, finished_at=now)
    for run in RestoreRun.objects.filter(status__in=active, job=None):
        BackupEvent.objects.create(restore_run=run, old_status=run.status, new_status="failed", note=WHY)
        RestoreRun.objects.filter(pk=run.pk).update(status="failed", error=WHY, finished_at=now)


class Migration(migrations.Migration):
    dependencies = [("backups", "0005_runs_are_jobs")]

    operations = [migrations.RunPython(end_runs_without_a_job, migrations.RunPython.noop)]
