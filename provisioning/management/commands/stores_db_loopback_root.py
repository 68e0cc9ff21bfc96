"""Queue the one-off `db_loopback_root` job for every active store (provisioning/db_hardening.py)."""

from django.core.management.base import BaseCommand, CommandError

from provisioning.db_hardening import loopback_root_jobs_enqueue


class Command(BaseCommand):
    help = (
        "Give root@127.0.0.1 and root@::1 of every active store's database the root password (databases "
        "initialised before 2026-12 have none): one job per store, run by the provisioning workers."
    )

    def handle(self, *args, **options):
        queued, refused = loopback_root_jobs_enqueue()
        for store, job in queued:
            self.stdout.write(f"store {store.pk} ({store.domain}): job #{job.pk} queued")
        for store, reason in refused:
            self.stderr.write(f"store {store.pk} ({store.domain}): not queued: {reason}")
        self.stdout.write(f"{len(queued)} queued, {len(refused)} not queued")
        if refused:
            raise CommandError(f"{len(refused)} stores were busy; run the command again once their jobs are done")
