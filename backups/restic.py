"""The only code that runs restic. Argument lists (never a shell string), a password file, JSON output
parsed, a timeout on every call, and a failure raised as ResticError carrying restic's stderr.

The repository is `settings.RESTIC_REPOSITORY`: a local path, `sftp:user@host:/path` or `s3:...`.

Several installations may share one repository, so every tag is namespaced by this installation's id
(`installation_id()`): a snapshot carries `installation:<id>` and `<id>:<tag>` for each of its tags, every
listing and forget filters on them, and callers only ever see and pass their tags without the prefix.
"""

import json
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from django.conf import settings

from backups.selectors import installation_id as stored_installation_id

logger = logging.getLogger(__name__)
T = TypeVar("T")
SNAPSHOT_ID = re.compile(r"\A[0-9a-f]{8,64}\Z")  # \Z, not $: `$` also matches before a trailing "\n"


class ResticError(Exception):
    def __init__(self, message: str, *, stderr: str = "", returncode: int | None = None):
        super().__init__(f"{message}: {stderr.strip()[-2000:]}" if stderr.strip() else message)
        self.stderr = stderr
        self.returncode = returncode


@dataclass(frozen=True)
class BackupSummary:
    snapshot_id: str
    files_new: int
    files_total: int
    data_added_bytes: int
    total_bytes: int
    seconds: float


INSTALLATION_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def installation_id() -> str:
    """BACKUP_INSTALLATION_ID, or the id made once for this installation and kept in its database."""
    value = settings.BACKUP_INSTALLATION_ID or stored_installation_id()
    if not INSTALLATION_ID.fullmatch(value):
        raise ResticError(f"BACKUP_INSTALLATION_ID must be 1-40 lowercase letters, digits or dashes, not {value!r}")
    return value


def _tags_written(tags: list[str]) -> list[str]:
    namespace = installation_id()
    for tag in tags:
        if not tag or "," in tag or tag != tag.strip():
            raise ResticError(f"not a tag: {tag!r}")  # restic's --tag splits on commas
    return [f"installation:{namespace}", *(f"{namespace}:{tag}" for tag in tags)]


def _tag_filter(tags: list[str]) -> str:
    """One --tag value: this installation's snapshots carrying all of `tags` (commas mean "and")."""
    return ",".join(_tags_written(tags))


def _ours(snapshot: dict, *, prefix: str) -> dict:
    """The snapshot as callers see it: its own tags without the namespace (`prefix`, "<id>:")."""
    tags = snapshot.get("tags") or []
    return {**snapshot, "tags": [tag.removeprefix(prefix) for tag in tags if tag.startswith(prefix)]}


def _environment() -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - restic's cache dir falls back to $HOME
        "RESTIC_REPOSITORY": settings.RESTIC_REPOSITORY,
        "RESTIC_PASSWORD_FILE": str(settings.RESTIC_PASSWORD_FILE),
        "RESTIC_CACHE_DIR": str(settings.RESTIC_CACHE_DIR),
    }
    # S3 and sftp credentials come from the environment restic knows (AWS_*, ...); pass them through.
    env.update({k: v for k, v in os.environ.items() if k.startswith(("AWS_", "B2_", "AZURE_", "GOOGLE_"))})
    return env


def run(args: list[str], *, timeout: float | None = None, cwd: Path | None = None) -> str:
    """Run `restic <args>`; returns stdout. Raises ResticError with stderr on failure or timeout."""
    command = [settings.RESTIC_BINARY, *args]
    try:
        completed = subprocess.run(  # noqa: S603 - an argument list, no shell
            command,
            capture_output=True,
            text=True,
            env=_environment(),
            cwd=cwd,
            timeout=timeout or settings.RESTIC_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ResticError(f"restic {args[0]} timed out after {exc.timeout} s", stderr=str(exc.stderr or "")) from exc
    except FileNotFoundError as exc:
        raise ResticError(f"restic is not installed ({settings.RESTIC_BINARY})") from exc
    if completed.returncode != 0:
        raise ResticError(f"restic {args[0]} failed", stderr=completed.stderr, returncode=completed.returncode)
    return completed.stdout


def repository_exists() -> bool:
    try:
        run(["cat", "config"], timeout=60)
    except ResticError as exc:
        # restic exits 10 when the repository does not exist (0.17+); older versions say so on stderr.
        if exc.returncode == 10 or "does not exist" in exc.stderr or "Is there a repository" in exc.stderr:
            return False
        raise
    return True


def repository_init() -> bool:
    """Create the repository when it is missing; True if it was created."""
    if repository_exists():
        return False
    Path(settings.RESTIC_PASSWORD_FILE).stat()  # a clear error when the password file is missing
    run(["init"], timeout=120)
    return True


def backup(
    paths: list[str], *, cwd: Path, tags: list[str], time: datetime | None = None, excludes: tuple[str, ...] = ()
) -> BackupSummary:
    """Back up `paths` (relative ones to `cwd`, so snapshots hold them without the staging prefix)."""
    args = ["backup", "--json", "--host", settings.RESTIC_HOSTNAME]
    for pattern in excludes:
        args += ["--exclude", pattern]
    for tag in _tags_written(tags):
        args += ["--tag", tag]
    if time is not None:
        args += ["--time", time.strftime("%Y-%m-%d %H:%M:%S")]
    output = run([*args, *paths], cwd=cwd)
    for line in reversed(output.splitlines()):
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("message_type") == "summary":
            return BackupSummary(
                snapshot_id=_full_id(message["snapshot_id"]),
                files_new=message.get("files_new", 0),
                files_total=message.get("total_files_processed", 0),
                data_added_bytes=message.get("data_added", 0),
                total_bytes=message.get("total_bytes_processed", 0),
                seconds=message.get("total_duration", 0.0),
            )
    raise ResticError("restic backup printed no summary", stderr=output[-2000:])


def _full_id(snapshot_id: str) -> str:
    """restic 0.14's backup summary names the snapshot by its short id; records keep the full one."""
    if len(snapshot_id) == 64:
        return snapshot_id
    found = json.loads(run(["snapshots", "--json", snapshot_id], timeout=120) or "[]")
    return found[0]["id"] if found else snapshot_id


def snapshots(*, tags: list[str] | None = None) -> list[dict]:
    """This installation's snapshots, oldest first; with `tags`, those carrying all of them."""
    args = ["snapshots", "--json", "--tag", _tag_filter(tags or [])]
    prefix = f"{installation_id()}:"
    return [_ours(snapshot, prefix=prefix) for snapshot in json.loads(run(args, timeout=300) or "[]") or []]


def snapshots_by_id(snapshot_ids: list[str]) -> list[dict]:
    """The snapshots with these ids, whatever their tags (ids this installation recorded, e.g. snapshots made
    before tags were namespaced); missing ids are left out. Tags are returned as restic has them."""
    for snapshot_id in snapshot_ids:
        if not SNAPSHOT_ID.match(snapshot_id):
            raise ResticError(f"not a snapshot id: {snapshot_id!r}")
    found = []
    for start in range(0, len(snapshot_ids), 100):  # restic ignores filters once ids are given
        output = run(["snapshots", "--json", *snapshot_ids[start : start + 100]], timeout=300)
        found += json.loads(output or "[]") or []
    return found


def tags_adopt(snapshot_id: str, *, tags: list[str]) -> str:
    """Add this installation's namespace and `tags` to a snapshot made before tags were namespaced. restic
    writes the snapshot anew under a new id (its `original` names the old one); returns the new id."""
    if not SNAPSHOT_ID.match(snapshot_id):
        raise ResticError(f"not a snapshot id: {snapshot_id!r}")
    args = ["tag"]
    for tag in _tags_written(tags):
        args += ["--add", tag]
    run([*args, snapshot_id], timeout=300)
    for snapshot in snapshots(tags=tags):
        if snapshot_id in (snapshot["id"], snapshot.get("original")):
            return snapshot["id"]
    raise ResticError(f"snapshot {snapshot_id[:8]} was not found after tagging it")


def forget(*, tags: list[str], keep_within: str, prune: bool = True) -> list[str]:
    """Forget this installation's snapshots carrying all `tags` that are older than `keep_within` (e.g.
    "14d") counted back from the newest of them; so the newest is always kept. Returns the ids removed."""
    args = ["forget", "--json", "--tag", _tag_filter(tags), "--keep-within", keep_within]
    if prune:
        args.append("--prune")
    output = run(args)
    removed = []
    for line in output.splitlines():
        if not line.startswith("[{"):
            continue  # prune's progress lines ("[0:00] 100.00% ...") also start with a bracket
        for group in json.loads(line):
            removed += [snapshot["id"] for snapshot in group.get("remove") or []]
    return removed


def forget_ids(snapshot_ids: list[str], *, prune: bool = True) -> None:
    """Forget these snapshots, then prune. Each must be this installation's: restic ignores tag filters
    once ids are given, so ownership is checked against the namespaced listing first."""
    for snapshot_id in snapshot_ids:
        if not SNAPSHOT_ID.match(snapshot_id):
            raise ResticError(f"not a snapshot id: {snapshot_id!r}")
    ours = {snapshot["id"] for snapshot in snapshots()}
    foreign = [snapshot_id for snapshot_id in snapshot_ids if snapshot_id not in ours]
    if foreign:
        raise ResticError(f"not this installation's snapshots, nothing forgotten: {', '.join(foreign)}")
    run(["forget", *(["--prune"] if prune else []), *snapshot_ids])


def dump(snapshot_id: str, path: str, *, into: Path) -> None:
    """Write one file of a snapshot to `into` (streamed by restic, not held in memory)."""
    if not SNAPSHOT_ID.match(snapshot_id):
        raise ResticError(f"not a snapshot id: {snapshot_id!r}")
    with open(into, "wb") as handle:
        completed = subprocess.run(  # noqa: S603 - an argument list, no shell
            [settings.RESTIC_BINARY, "dump", snapshot_id, path],
            stdout=handle,
            stderr=subprocess.PIPE,
            env=_environment(),
            timeout=settings.RESTIC_TIMEOUT,
            check=False,
        )
    if completed.returncode != 0:
        raise ResticError("restic dump failed", stderr=completed.stderr.decode(errors="replace"))


def check() -> str:
    return run(["check"])


def restore(snapshot_id: str, *, into: Path, include: list[str] | None = None) -> None:
    """Write a snapshot's files (or only those matching `include` patterns) under `into`, as the snapshot
    holds them (db.sql, files/<volume>.tar, store.json for a store's). One restic call for all of them."""
    if not SNAPSHOT_ID.match(snapshot_id):
        raise ResticError(f"not a snapshot id: {snapshot_id!r}")
    args = ["restore", snapshot_id, "--target", str(into)]
    for pattern in include or []:
        args += ["--include", pattern]
    run(args)


def dump_stream(snapshot_id: str, path: str, *, consume: Callable[[BinaryIO], T]) -> T:
    """`consume(stream)` reads one file of a snapshot as restic streams it (never written to disk whole, e.g.
    a volume's archive read member by member); returns what it returns. What it leaves unread is drained, so
    restic ends normally; a failure of restic raises ResticError."""
    if not SNAPSHOT_ID.match(snapshot_id):
        raise ResticError(f"not a snapshot id: {snapshot_id!r}")
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: restic never blocks on a full stderr
        process = subprocess.Popen(  # noqa: S603 - an argument list, no shell
            [settings.RESTIC_BINARY, "dump", snapshot_id, path],
            stdout=subprocess.PIPE,
            stderr=errors,
            env=_environment(),
        )
        try:
            result = consume(process.stdout)
            while process.stdout.read(1024 * 1024):
                pass
            returncode = process.wait(timeout=settings.RESTIC_TIMEOUT)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            process.stdout.close()
        if returncode != 0:
            errors.seek(0)
            raise ResticError(
                "restic dump failed", stderr=errors.read().decode(errors="replace"), returncode=returncode
            )
    return result
