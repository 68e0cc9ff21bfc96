"""Reactions to a new store going live: a provision or retry job succeeded and the store became active.

Apps register them from their AppConfig.ready() (backups queues the store's first backup); the engine
imports none of them. The engine calls each reaction inside the transaction that makes the store active,
so a reaction arranges its work with transaction.on_commit: only after that commit is the job over and
the store free for another operation. A reaction reports what it did, in plain words, through `log`,
which writes to the job's "hooks" step (staff read it on the job page)."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

logger = logging.getLogger(__name__)
Log = Callable[[str], None]


@dataclass(frozen=True)
class StoreLiveHook:
    name: str
    # What the hooks step says while the job still runs, e.g. "its first backup is queued".
    promise: str
    # react(store_id=..., log=...): called inside the transaction that makes the store active.
    react: Callable[..., None]


_hooks: dict[str, StoreLiveHook] = {}


def store_live_register(*, name: str, promise: str, react: Callable[..., None]) -> None:
    """Called from an app's AppConfig.ready(); registering the same name again replaces the reaction."""
    _hooks[name] = StoreLiveHook(name=name, promise=promise, react=react)


def store_live_hooks() -> list[StoreLiveHook]:
    return list(_hooks.values())


def store_live_react(*, store_id: int, log: Log) -> None:
    """Call every registered reaction, each in a savepoint of its own: a reaction that fails is logged and
    rolled back, and never takes back the job's success or the store's new status."""
    for hook in _hooks.values():
        try:
            with transaction.atomic():
                hook.react(store_id=store_id, log=log)
        except Exception as exc:
            logger.exception("store %s: the live hook %s failed", store_id, hook.name)
            log(f"{hook.name} failed and did nothing: {type(exc).__name__}: {exc}")
