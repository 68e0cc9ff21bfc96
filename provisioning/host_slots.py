"""Per-host work: at most a host's `job_slots` jobs touch its engine at once, so a busy or slow host never
holds every worker while other hosts' jobs wait.

Workers are shared: every worker of a queue takes any host's jobs. Before a worker claims a job it takes one
of the job's host's slots, a MariaDB named lock per slot (`host.<id>.slot.<n>`, n < the host's slots), held
on a connection of its own for the job's life, exactly like the job's liveness lock (provisioning.liveness):
the server frees it when the worker's session ends, so a dead worker never keeps a slot. A job whose host has
no free slot is not run now: it goes back on its queue, due again after HOST_JOB_WAIT_SECONDS (the workers'
scheduler moves it back), with a log line for staff, and the worker takes the next job, of another host.

Not bounded: a job whose store has no host yet (a provision before its allocate step picks one), and
everything on SQLite (the demo has no named locks and one worker).
"""

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from provisioning import liveness


def _slot_key(host_id: int, slot: int) -> str:
    return f"host.{host_id}.slot.{slot}"


@contextmanager
def host_slot_hold(*, host_id: int | None, slots: int) -> Iterator[int | None | bool]:
    """Hold a free slot of the host while the block runs. Yields the slot's number, False when all `slots`
    are held by live workers, or None when nothing is bounded (no host, or no named locks)."""
    if host_id is None or not liveness.named_locks():
        yield None
        return
    holder = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        taken: int | bool = False
        with holder.cursor() as cursor:
            cursor.execute("SET SESSION wait_timeout = 86400")  # as liveness: idles while the job runs
            for slot in range(max(slots, 1)):
                cursor.execute("SELECT GET_LOCK(%s, 0)", [liveness.lock_name(_slot_key(host_id, slot))])
                if cursor.fetchone()[0] == 1:
                    taken = slot
                    break
        yield taken
    finally:
        with suppress(DatabaseError):  # closing the session frees the lock too, whatever state it is in
            with holder.cursor() as cursor:
                # At once: the server frees a closed session's locks a moment later, and a job waiting
                # for this slot may be asking for it now.
                cursor.execute("SELECT RELEASE_ALL_LOCKS()")
        with suppress(DatabaseError):
            holder.close()


def host_slots_in_use(*, host_id: int, slots: int) -> int | None:
    """How many of the host's slots live workers hold now; None where it cannot be known (SQLite)."""
    if not liveness.named_locks():
        return None
    used = 0
    for slot in range(max(slots, 1)):
        if liveness.operation_holder_alive(key=_slot_key(host_id, slot)):
            used += 1
    return used
