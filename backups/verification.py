"""Proof that a snapshot restores: its dump and files are restored into throwaway containers on an internal
network (no published port, no route out), the front page must answer 200, and every table must hold as
many rows as the dump has. The result is recorded on the BackupRun ("verified on <date>") or, on failure,
as its verify_error, which staff see in the admin.
"""

import logging
import re
import shutil
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from backups import restic
from backups.models import BackupRun, RunStatus
from provisioning import docker_client
from provisioning.stacks import stack_for
from stores.models import Store
from stores.services import store_credentials

logger = logging.getLogger(__name__)
MB = 1024 * 1024
# mariadb-dump quotes table names in backticks, doubling any backtick inside a name.
INSERT = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)` VALUES ")


class VerificationFailed(Exception):
    pass


def dump_row_counts(path: Path) -> Counter:
    """Rows per table in a mariadb-dump file, counting the value tuples of its INSERT statements.

    A small state machine: parentheses inside quoted strings (with backslash escapes) are data, not rows."""
    counts: Counter = Counter()
    with open(path, "rb") as handle:
        for line in handle:
            match = INSERT.match(line)
            if not match:
                continue
            table = match.group(1).replace(b"``", b"`").decode()
            depth, quoted, escaped = 0, False, False
            for byte in line[match.end() :]:
                if quoted:
                    if escaped:
                        escaped = False
                    elif byte == 0x5C:  # backslash
                        escaped = True
                    elif byte == 0x27:  # closing quote
                        quoted = False
                elif byte == 0x27:
                    quoted = True
                elif byte == 0x28:  # (
                    depth += 1
                    if depth == 1:
                        counts[table] += 1
                elif byte == 0x29:  # )
                    depth -= 1
    return counts


def quote_identifier(name: str) -> str:
    """A MariaDB identifier for any table name a tenant can create (backticks doubled inside backticks)."""
    if not name or "\0" in name:
        raise VerificationFailed(f"not a table name: {name!r}")
    return "`" + name.replace("`", "``") + "`"


def _row_counts(container: str, tables: list[str], base_url: str | None) -> Counter:
    """Rows per table, counted by the restored database. Table names come from the tenant's dump, so each
    is quoted as an identifier, and the rows are labelled by position rather than by echoing names back."""
    if not tables:
        return Counter()
    union = " UNION ALL ".join(
        f"SELECT {index}, COUNT(*) FROM {quote_identifier(table)}"  # noqa: S608 - quoted identifiers
        for index, table in enumerate(tables)
    )
    code, output = docker_client.container_exec(
        name=container,
        command=["sh", "-c", 'mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" "$MARIADB_DATABASE" -N -B -e "$0"', union],
        base_url=base_url,
    )
    if code != 0:
        raise VerificationFailed(f"counting rows failed: {output[-1000:]}")
    counts = Counter()
    for line in output.strip().splitlines():
        index, count = line.split("\t")
        counts[tables[int(index)]] = int(count)
    return counts


def _front_page_status(container: str, domain: str, base_url: str | None) -> str:
    """The status line the web container itself answers on port 80 for the store's domain (bash, no curl)."""
    script = (
        'exec 3<>/dev/tcp/127.0.0.1/80 && printf "GET / HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n" '
        '"$0" >&3 && head -n1 <&3'
    )
    code, output = docker_client.container_exec(
        name=container, command=["bash", "-c", script, domain], base_url=base_url
    )
    return output.strip() if code == 0 else ""


def snapshot_verify(*, run_id: int) -> BackupRun:
    """Verify one backup while holding its store's lease, so no job, backup or restore of the store runs
    beside it (a teardown would remove the throwaway containers, which carry the store's label). StoreBusy
    when another operation is active: the snapshot is neither marked verified nor failed."""
    from stores.operations import store_lease

    store_id = BackupRun.objects.values_list("store_id", flat=True).get(pk=run_id)
    if store_id is None:
        raise VerificationFailed(f"backup {run_id} has no store snapshot to verify")
    from backups.services import _web_volumes

    # One restic dump for the database and one per web volume, each within RESTIC_TIMEOUT: the lease must
    # outlast them all, or a teardown or restore could start beside a check still running.
    dumps = 1 + len(_web_volumes(Store.objects.get(pk=store_id)))
    seconds = dumps * settings.RESTIC_TIMEOUT + 2 * settings.STORE_WEB_READY_TIMEOUT + 600
    holder = f"A check that backup #{run_id} restores"  # one per run: a lease never clears another's
    with store_lease(store_id=store_id, holder=holder, seconds=seconds):
        return _snapshot_verify(run_id=run_id)


def _snapshot_verify(*, run_id: int) -> BackupRun:
    from backups.services import DB_DUMP, _web_volumes, database_import, volume_restore
    from provisioning.steps import wait_db

    run = BackupRun.objects.select_related("store__host", "store__plan").get(pk=run_id)
    if run.status != RunStatus.SUCCEEDED or not run.snapshot_id or run.store is None:
        raise VerificationFailed(f"backup {run.pk} has no store snapshot to verify")
    store = run.store
    stack = stack_for(store)
    base_url = store.host.docker_url if store.host else None
    prefix = f"{settings.STORE_OBJECT_PREFIX}-verify-{run.pk}"
    label = f"shophosting.verify={run.pk}"
    labels = {**stack.labels, "shophosting.verify": str(run.pk)}
    staging = Path(settings.BACKUP_STAGING_DIR) / f"verify-{run.pk}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        services = {s.role: s for s in stack.services(credentials=store_credentials(store))}
        docker_client.labelled_objects_remove(label=label, base_url=base_url)
        restic.dump(run.snapshot_id, f"/{DB_DUMP}", into=staging / DB_DUMP)
        expected = dump_row_counts(staging / DB_DUMP)
        network = f"{prefix}-net"
        docker_client.network_ensure(name=network, labels=labels, internal=True, base_url=base_url)
        volumes = {}
        for suffix, mount in _web_volumes(store).items():
            volume = f"{prefix}-{suffix}"
            docker_client.volume_ensure(name=volume, labels=labels, base_url=base_url)
            volume_restore(
                snapshot_id=run.snapshot_id,
                suffix=suffix,
                mount=mount,
                volume=volume,
                staging=staging,
                labels=labels,
                base_url=base_url,
            )
            volumes[volume] = mount

        def start(role: str, volume_map: dict[str, str]) -> str:
            spec = services[role]
            name = f"{prefix}-{role}"
            docker_client.stack_container_ensure(
                name=name,
                image=spec.image,
                network=network,
                alias=role,
                labels=labels,
                memory_bytes=spec.memory_mb * MB,
                cpus=spec.cpus,
                environment=spec.environment,
                volumes=volume_map,
                command=spec.command,
                healthcheck=spec.healthcheck,
                base_url=base_url,
            )
            return name

        db = start("db", {})
        if "cache" in services:
            start("cache", {})
        wait_db(store, lambda message: None, timeout=120, container=db)
        database_import(container=db, dump=staging / DB_DUMP, base_url=base_url)
        actual = _row_counts(db, sorted(expected), base_url)
        if actual != expected:
            differ = {t: (expected[t], actual.get(t, 0)) for t in expected if expected[t] != actual.get(t, 0)}
            raise VerificationFailed(f"row counts differ from the dump (table: dump, restored): {differ}")
        web = start("web", volumes)
        status_line = ""

        def answers() -> bool:
            nonlocal status_line
            status_line = _front_page_status(web, store.domain, base_url)
            return " 200 " in f"{status_line} "

        if not _wait(answers, settings.STORE_WEB_READY_TIMEOUT):
            raise VerificationFailed(f"the restored front page did not answer 200 (got {status_line or 'nothing'!r})")
    except (VerificationFailed, restic.ResticError, docker_client.ProvisioningError) as exc:
        logger.warning("verification of backup %s failed: %s", run.pk, exc)
        BackupRun.objects.filter(pk=run.pk).update(verify_error=str(exc)[:5000], verified_at=None)
    except Exception as exc:  # anything else about this snapshot is its failure, recorded, not the run's end
        logger.exception("verification of backup %s failed", run.pk)
        BackupRun.objects.filter(pk=run.pk).update(verify_error=f"{type(exc).__name__}: {exc}"[:5000], verified_at=None)
    else:
        BackupRun.objects.filter(pk=run.pk).update(verified_at=timezone.now(), verify_error="")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        docker_client.labelled_objects_remove(label=label, base_url=base_url)
    return BackupRun.objects.get(pk=run.pk)


def _wait(check, timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False
