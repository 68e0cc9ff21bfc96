"""The log viewer's reader: the tail of one of the logs named in settings.STAFF_LOG_FILES. A request names a
log by its key, never by a path, so nothing outside that list can be read."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# The files are JSON lines (settings.LOGGING); older or hand-written ones may use the plain format
# "2026-11-26 08:00:00,123 LEVEL logger message".
_PLAIN = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+\s+(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")
TAIL_BYTES = 512 * 1024


class UnknownLog(KeyError):
    pass


@dataclass(frozen=True)
class LogEntry:
    level: str
    text: str  # the line, with any continuation lines (a traceback) after it


def _parse(line: str) -> tuple[str | None, str]:
    """(level, text to show) of one line; level None for a continuation line (a traceback)."""
    if match := _PLAIN.match(line):
        return match[1], line
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None, line
        if "level" not in record and "levelname" not in record:
            return "INFO", line  # the security log's audit records carry no level: they are records, not warnings
        level = str(record.get("level") or record.get("levelname")).upper()
        head = " ".join(str(record[key]) for key in ("time", "level", "logger") if record.get(key) not in (None, ""))
        request = f" [{record['request_id']}]" if record.get("request_id") not in (None, "", "-") else ""
        text = f"{head}{request} {record.get('message', '')}"
        if record.get("exc_info"):
            text += "\n" + str(record["exc_info"])
        return level, text
    return None, line


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
        level, text = _parse(line)
        if level is None and entries:
            entries[-1][1].append(text)  # a traceback or a wrapped message belongs to the entry above
        else:
            entries.append([level or "INFO", [text]])
    threshold = LEVELS.index(min_level) if min_level in LEVELS else 0
    kept = [
        LogEntry(level=level, text="\n".join(text))
        for level, text in entries
        if level in LEVELS and LEVELS.index(level) >= threshold
    ]
    return path, kept[-limit:]
