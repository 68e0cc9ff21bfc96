"""Recurring jobs, run by `manage.py rqcron shophosting.cron` (rq 3's cron scheduler).

The scheduler only enqueues; the RQ workers do the work. On a server with deploy/'s systemd timers
(PLATFORM_TIMERS_EXTERNAL), the daily platform backups and housekeeping run from those timers instead.
"""

from django.conf import settings
from rq import cron

from backups import jobs as backup_jobs
from billing import jobs as billing_jobs
from provisioning.jobs import (
    check_history_downsample,
    hosts_fence_check,
    pool_refill,
    provisioning_evacuations_advance,
    provisioning_jobs_reap,
    provisioning_jobs_requeue,
    provisioning_rollouts_advance,
    stores_checks_enqueue_due,
    stores_disk_measure,
    stores_names_check,
    stores_tls_renew,
    stores_tls_retry_lost,
    stores_usage_sample,
)
from shophosting import jobs


def register(func, queue: str, **when) -> None:
    """rq's cron enqueues on a plain Queue, whose timeout is 180 s whatever RQ_QUEUES says: every entry gets at
    least its queue's timeout (a certificate renewal or usage sample over many stores takes longer), and the
    restic ones name a longer one."""
    when.setdefault("job_timeout", settings.RQ_QUEUES[queue]["DEFAULT_TIMEOUT"])
    cron.register(func, queue, **when)


if not settings.PLATFORM_TIMERS_EXTERNAL:
    # On a server these are systemd timers (deploy/systemd: shophosting-housekeeping.timer).
    register(jobs.sessions_clear_expired, "default", cron="17 3 * * *")
    register(jobs.axes_attempts_expire, "default", cron="27 3 * * *")
# Marketing pages scheduled by editors go live (or expire) within a minute of their time.
register(jobs.pages_publish_scheduled, "default", interval=60)
# Fails jobs of every kind (provisioning, backups, restores, verifications) whose worker died mid-job, within
# a minute, so the store is free again and the job can be retried.
register(provisioning_jobs_reap, "default", interval=60)
# A job recorded but never enqueued (its process died after the commit), or lost by Redis, is enqueued again,
# so the store's one-operation lock (stores.operations) is never held for ever. Platform backups (no store)
# get the same, and are failed past their timeout.
register(provisioning_jobs_requeue, "default", interval=60)
register(backup_jobs.platform_runs_recover, "default", interval=60)
# A rollout whose next batch was not queued when its last update ended (the worker died right after) goes on.
register(provisioning_rollouts_advance, "default", interval=60)
# A host in maintenance whose next store's move was not queued when the last one ended goes on.
register(provisioning_evacuations_advance, "default", interval=60)
# The warm pool: every active host back to its targets, stacks on old images or of lowered targets removed
# (provisioning/README.md, "The warm pool"). On the pool queue, behind the pool's own builds only.
register(pool_refill, "pool", interval=60)
# The stores' outbound fence on every host, compared with the settings through each engine (a helper container
# for a second or so): drift is the platform check egress.host-<id>, and opens a staff incident if it stays.
register(hosts_fence_check, "default", interval=10 * 60)
# A store's certificate retry is scheduled in Redis; one that a Redis restart lost is enqueued again.
register(stores_tls_retry_lost, "default", interval=5 * 60)
# Custom domains: pending ones are checked for their proof (TXT record or address), unreachable ones for DNS
# pointing back at us; a name that became active gets its vhost and certificate (stores/README.md, "Names").
register(stores_names_check, "default", interval=settings.DOMAIN_CHECK_INTERVAL_MINUTES * 60, job_timeout=15 * 60)
# Renews store certificates in their last 30 days.
register(stores_tls_renew, "provisioning", cron="41 4 * * *")
# Dunning: subscriptions unpaid past the grace period have their stores suspended.
register(billing_jobs.dunning_enforce, "default", cron="7 * * * *")
# Every store in the state its billing asks for: a suspend or resume refused while the store was busy is
# queued once it is free (held stores, suspended or canceled subscriptions, payments that came back).
register(billing_jobs.stores_billing_enforce, "default", cron="*/10 * * * *")
# Canceled subscriptions whose retention period is over have their stores torn down.
register(billing_jobs.subscriptions_teardown_due, "default", cron="37 * * * *")
# Closing accounts: final backups asked for, stores torn down once theirs is safe, closed accounts purged
# after their retention (billing/services/closure.py).
register(billing_jobs.account_closures_advance, "default", cron="*/10 * * * *")
# Signups that never paid: the checkout is expired and the domain freed after 24 h.
register(billing_jobs.checkouts_abandoned_cleanup, "default", cron="47 * * * *")
# Backups: queue the stores whose last backup is older than BACKUP_INTERVAL_HOURS; apply retention daily;
# check the repository's integrity weekly.
register(backup_jobs.backups_enqueue_due, "default", interval=15 * 60)
# restic needs longer than the backups queue's timeout.
RESTIC_JOB_TIMEOUT = settings.RESTIC_TIMEOUT + 600
register(backup_jobs.backups_prune, "backups", cron="13 5 * * *", job_timeout=4 * RESTIC_JOB_TIMEOUT)
register(backup_jobs.repository_check, "backups", cron="23 6 * * 0", job_timeout=RESTIC_JOB_TIMEOUT)
# The backup pages read snapshots from the database; this keeps it matching the repository (snapshots
# made or forgotten outside the platform) without a restic call in any web request.
register(backup_jobs.snapshots_reconcile, "backups", cron="53 * * * *", job_timeout=RESTIC_JOB_TIMEOUT)
# Prepared backup downloads past BACKUP_DOWNLOAD_KEEP_HOURS and import uploads no import took are removed
# (files on local disk only: no restic).
register(backup_jobs.transfers_clean_up, "default", cron="3 * * * *")
# Weekly proof that each store's newest snapshot restores (throwaway containers, front page and row counts).
# This only queues one `verify` job per store (backups queue); each job has its own timeout.
register(backup_jobs.backups_verify, "backups", cron="43 3 * * 1")
# The platform itself: database, nginx sites, certificates and env file; and the application code. Daily.
# On a server: shophosting-backup-system.timer and shophosting-backup-code.timer.
if not settings.PLATFORM_TIMERS_EXTERNAL:
    register(backup_jobs.system_backup, "backups", cron="17 2 * * *", job_timeout=RESTIC_JOB_TIMEOUT)
    register(backup_jobs.code_backup, "backups", cron="37 2 * * *", job_timeout=RESTIC_JOB_TIMEOUT)
# The platform round: the Docker engines as a worker sees them, recorded for /healthz and the staff health page
# (the web tier has no docker group), and each queue's worker heartbeats; a component failing
# CARE_INCIDENT_THRESHOLD rounds in a row opens a staff incident (provisioning/care/platform.py).
register(jobs.platform_checks_run, "default", interval=60)
# Memory and CPU of each active store, for the chart on its page.
register(stores_usage_sample, "default", interval=5 * 60)
# Disk used by each live or suspended store's volumes, against its plan's allowance (the engine walks every
# volume for it: hourly, on the provisioning queue, whose timeout fits a large host).
register(stores_disk_measure, "provisioning", cron="7 * * * *")
# Store care: each minute, the stores whose slot (a hash of the id over CARE_CHECK_INTERVAL_MINUTES) is this
# minute get a round of checks, so a thousand stores never fire at once. Rounds past CARE_HISTORY_DAYS are
# folded into hourly rows nightly.
register(stores_checks_enqueue_due, "default", interval=60)
register(check_history_downsample, "default", cron="33 4 * * *")
