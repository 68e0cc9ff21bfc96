"""Transactions that InnoDB may pick as a deadlock's victim, run again.

Two short transactions that write near each other in a unique index can deadlock in InnoDB even when they
touch different rows: a unique check takes a shared lock on the neighbouring index record, and an insert into
the gap next to it waits for the other's. Two warm pool claims on one host did exactly that, each moving a
port from its pool row to its store in `stores_store`'s (host, port) index (the benchmark's burst of ten
orders, once in about thirty). InnoDB then rolls the victim's whole transaction back (MariaDB error 1213),
and running it again is the documented remedy.
"""

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, connection, transaction

logger = logging.getLogger(__name__)

ER_LOCK_DEADLOCK = 1213
T = TypeVar("T")


def atomic_retrying_deadlocks(function: Callable[[], T], *, attempts: int = 4) -> T:
    """`function()` in a transaction of its own; run again (after a short random pause, so the two do not
    meet again) when InnoDB rolled it back as a deadlock's victim, up to `attempts` times in all.

    Only where no transaction is open yet: the rollback undoes the caller's whole transaction, which a retry
    of this part alone cannot put back, so inside one the deadlock is raised as it is."""
    if connection.in_atomic_block:
        with transaction.atomic():
            return function()
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return function()
        except OperationalError as exc:
            if not exc.args or exc.args[0] != ER_LOCK_DEADLOCK or attempt == attempts:
                raise
            logger.info("deadlock, running the transaction again (attempt %s of %s): %s", attempt + 1, attempts, exc)
            time.sleep(random.uniform(0.005, 0.05) * attempt)  # noqa: S311 - a jitter, not a secret
    raise AssertionError("unreachable")


def retrying_deadlocks(function: Callable[..., T]) -> Callable[..., T]:
    """`transaction.atomic` as a decorator, with `atomic_retrying_deadlocks`'s retry where no transaction is open."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return atomic_retrying_deadlocks(lambda: function(*args, **kwargs))

    return wrapper
