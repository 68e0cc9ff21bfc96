"""django-ratelimit counts in fixed windows, staggered per key: a test that sends limit + 1 requests must start
inside a fresh window, or a boundary between its requests resets the count and the last one passes."""

from datetime import UTC, datetime

import time_machine
from django_ratelimit.core import _get_window, _split_rate

CLIENT_IP = "127.0.0.1"  # Django's test client


def fresh_window_start(rate: str, key: str = CLIENT_IP) -> datetime:
    """A moment one second into a new window of `rate` for `key` (windows are staggered per key)."""
    _, period = _split_rate(rate)
    now = int(datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp())
    with time_machine.travel(now, tick=False):
        window_end = _get_window(key, period)
    return datetime.fromtimestamp(window_end - period + 1, tz=UTC)
