"""A test-only job kind with an undo step, `test_undoable`: its step and its undo touch no engine, and log
what they were given, so tests/test_undo_jobs.py can follow a reaped job's undo through the real engine."""

from provisioning.kinds import JobKind, Step, register

UNDOABLE_KIND = "test_undoable"
# Set to a truthy value to make the next undo fail (then cleared): a failed undo job and its retry.
fail_next_undo: list[str] = []


def _change(store, log) -> None:
    log("changed the store")


def _undo(store, log, *, job_id: int) -> None:
    if fail_next_undo:
        raise RuntimeError(fail_next_undo.pop())
    log(f"put back what job #{job_id} changed on {store.domain}")


KIND = JobKind(
    name=UNDOABLE_KIND,
    title="Change and put back (tests only)",
    steps=(Step("change", "Change the store", _change),),
    store_statuses=frozenset({"active"}),
    undo=Step("put_back", "Put the store back", _undo, with_job=True),
    undo_after_reap=lambda job_id: True,
)


def kind_register() -> None:
    register(KIND)
