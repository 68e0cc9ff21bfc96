"""The log viewer's reader: the tail of one of the logs named in settings.STAFF_LOG_FILES. A request names a
log by its key, never by a path, so nothing outside that list can be read."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# The plain format in settings.LOGGING: "2026-11-26 08:00:00,123 LEVEL logger message".
_PLAIN = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+\s+(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")
TAIL_BYTES = 512 * 1024


class UnknownLog(KeyError):
    pass


@dataclass(frozen=True)
class LogEntry:
    level: str
    text: str  # the line, with any continuation lines (a traceback) after it


def _level_of(line: str) -> str | None:
    if match := _PLAIN.match(line):
        return match[1]
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None
        # The security log's audit lines carry no level: they are records, not warnings.
        return str(record.get("level") or record.get("levelname") or "INFO").upper()
    return None


def log_tail(*, key: str, min_level: str = "DEBUG", limit: int = 300) -> tuple[Path, list[LogEntry]]:
    """The last `limit` entries at `min_level` or above, oldest first."""
    if key not in settings.STAFF_LOG_FILES:
        raise UnknownLog(key)
    path = Path(settings.STAFF_LOG_FILES[key])
    if not path.exists():
        return path, []
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - TAIL_BYTES))
        chunk = handle.read().decode("utf-8", errors="replace")
    lines = chunk.splitlines()
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first line was cut in the middle
    entries: list[list] = []
    for line in lines:
        level = _level_of(line)
        if level is None and entries:
            entries[-1][1].append(line)  # a traceback or a wrapped message belongs to the entry above
        else:
            entries.append([level or "INFO", [line]])
    threshold = LEVELS.index(min_level) if min_level in LEVELS else 0
    kept = [
        LogEntry(level=level, text="\n".join(text))
        for level, text in entries
        if level in LEVELS and LEVELS.index(level) >= threshold
    ]
    return path, kept[-limit:]
