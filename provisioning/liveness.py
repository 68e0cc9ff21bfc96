"""Whether the process running a job (or a backup or restore run) is still there, as the database knows it.

The worker that claims a job holds a MariaDB named lock (GET_LOCK), on a connection of its own, for as long
as it runs the job. The server frees a named lock when the session holding it ends, so a running job whose
lock is free has lost its worker: the process died (killed, out of memory, the host restarted, or systemd
stopped it after its Redis connection failed) or the database restarted under it. The reaper can then fail
the job at once instead of after its timeout. RQ cannot tell this: a Redis restart forgets which worker runs
what while the worker may still be running, and a worker that died leaves its job "started" until RQ's own
timeout.

Named locks are server-wide, so their names carry the database's name (the test databases of several runs
share one server). Other databases (SQLite in the demo) have no named locks: liveness is unknown there, and
only the timeout reaps.
"""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections


def lock_name(key: str) -> str:
    database = hashlib.sha256(str(connection.settings_dict["NAME"]).encode()).hexdigest()[:16]
    return f"shophosting.{key}.{database}"  # at most 64 characters, MariaDB's limit


def named_locks() -> bool:
    return connection.vendor == "mysql"


def job_hold(*, job_id: int):
    return operation_hold(key=f"job.{job_id}")


def job_holder_alive(*, job_id: int) -> bool | None:
    return operation_holder_alive(key=f"job.{job_id}")


@contextmanager
def operation_hold(*, key: str) -> Iterator[bool]:
    """Hold the lock of `key` ("job.12", "restore.3") while the block runs; yields False when another live
    process holds it.

    The lock lives on a connection of its own, so nothing the job does with Django's connection (closing
    it after an error, for one) can drop it; closing that connection at the end releases it."""
    if not named_locks():
        yield True
        return
    holder = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with holder.cursor() as cursor:
            # The connection idles while the job runs; a server with a short wait_timeout would otherwise
            # end it and free the lock under a live worker. A worker that hangs is reaped by its timeout.
            cursor.execute("SET SESSION wait_timeout = 86400")
            cursor.execute("SELECT GET_LOCK(%s, 0)", [lock_name(key)])
            held = cursor.fetchone()[0] == 1
        yield held
    finally:
        with suppress(DatabaseError):  # a connection the server already dropped is closed all the same
            holder.close()


def operation_holder_alive(*, key: str) -> bool | None:
    """True while a process holds the lock of `key`, False when none does, None where it cannot be known."""
    if not named_locks():
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT IS_USED_LOCK(%s)", [lock_name(key)])
        return cursor.fetchone()[0] is not None
