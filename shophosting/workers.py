"""The RQ worker class the platform runs (settings.RQ["WORKER_CLASS"]): rq's own, with one repair."""

from rq import Worker


class RegisteringWorker(Worker):
    """Registers itself again when Redis has forgotten it.

    Redis keeps nothing on disk here, so after a Redis restart a running worker is missing from the
    `rq:workers` set that /healthz and the staff pages read: rq registers a worker only when it starts, and
    health said "no worker" until every worker was restarted by hand. The worker's own heartbeat (every
    worker_ttl - 15 s while idle, and around each job) now puts it back."""

    def heartbeat(self, timeout=None, pipeline=None):
        if pipeline is None and not self.connection.exists(self.key):
            self.register_birth()
        super().heartbeat(timeout=timeout, pipeline=pipeline)
