"""shophosting.core.transactions: a real InnoDB deadlock between two MariaDB sessions, and its victim run again.

Each side runs in a thread of its own, so on a connection of its own outside the test's transaction (as a worker
runs a job step), on a scratch table of this test."""

import threading

import pytest
from django.db import OperationalError, connection, transaction

from shophosting.core.transactions import ER_LOCK_DEADLOCK, atomic_retrying_deadlocks

pytestmark = pytest.mark.django_db


def _in_thread(function):
    """Run `function` in a thread with its own database connection; return what it returned or raise what it
    raised."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _sql(statement: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


@pytest.fixture
def probe_table():
    def create():
        _sql("CREATE TABLE IF NOT EXISTS test_deadlock_probe (id INT PRIMARY KEY, value INT NOT NULL) ENGINE=InnoDB")
        _sql("DELETE FROM test_deadlock_probe")
        _sql("INSERT INTO test_deadlock_probe VALUES (1, 0), (2, 0)")

    thread, _ = _in_thread(create)
    thread.join()
    yield
    thread, _ = _in_thread(lambda: _sql("DROP TABLE IF EXISTS test_deadlock_probe"))
    thread.join()


def test_the_deadlock_victim_runs_again_and_both_sides_commit(probe_table):
    both_hold_their_first_row = threading.Barrier(2, timeout=20)
    runs = {"one": 0, "two": 0}

    def side(name: str, first: int, second: int):
        def work():
            runs[name] += 1
            _sql("UPDATE test_deadlock_probe SET value = value + 1 WHERE id = %s", [first])
            if runs[name] == 1:  # the first run of each meets the other's lock: a cycle InnoDB breaks
                both_hold_their_first_row.wait()
            _sql("UPDATE test_deadlock_probe SET value = value + 10 WHERE id = %s", [second])
            return runs[name]

        return lambda: atomic_retrying_deadlocks(work)

    one, one_outcome = _in_thread(side("one", 1, 2))
    two, two_outcome = _in_thread(side("two", 2, 1))
    one.join(30)
    two.join(30)
    assert "error" not in one_outcome and "error" not in two_outcome, (one_outcome, two_outcome)
    # One side was the victim and ran twice; its first run left nothing behind (InnoDB rolled it back whole).
    assert sorted(runs.values()) == [1, 2]
    thread, outcome = _in_thread(lambda: _sql("SELECT id, value FROM test_deadlock_probe ORDER BY id"))
    thread.join()
    assert outcome["value"] == ((1, 11), (2, 11))


def test_inside_an_open_transaction_the_deadlock_is_raised_as_it_is(probe_table):
    """The rollback took the caller's whole transaction: running only the inner part again would commit half
    of it."""
    both_hold_their_first_row = threading.Barrier(2, timeout=20)

    def side(first: int, second: int):
        def work():
            _sql("UPDATE test_deadlock_probe SET value = value + 1 WHERE id = %s", [first])
            both_hold_their_first_row.wait()
            _sql("UPDATE test_deadlock_probe SET value = value + 10 WHERE id = %s", [second])

        def outer():
            with transaction.atomic():
                atomic_retrying_deadlocks(work)

        return outer

    one, one_outcome = _in_thread(side(1, 2))
    two, two_outcome = _in_thread(side(2, 1))
    one.join(30)
    two.join(30)
    errors = [outcome["error"] for outcome in (one_outcome, two_outcome) if "error" in outcome]
    assert len(errors) == 1 and isinstance(errors[0], OperationalError), (one_outcome, two_outcome)
    assert errors[0].args[0] == ER_LOCK_DEADLOCK
