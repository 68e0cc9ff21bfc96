"""Recurring jobs, run by `manage.py rqcron shophosting.cron` (rq 3's cron scheduler).

The scheduler only enqueues; the RQ workers do the work. Later issues register their own jobs here
(backups due, abandoned checkouts, certificate renewals).
"""

from rq import cron

from shophosting import jobs

cron.register(jobs.sessions_clear_expired, "default", cron="17 3 * * *")
cron.register(jobs.axes_attempts_expire, "default", cron="27 3 * * *")
