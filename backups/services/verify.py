"""The `verify` job kind: proof that a snapshot restores. Its dump and files are restored into throwaway
containers on an internal network (no published port, no route out), every table must hold as many rows as
the dump has, and the front page must answer 200. The result is recorded on the BackupRun ("verified on
<date>") or, on failure, as its verify_error, which staff see in the admin and receive by e-mail.

A verification is a job on the store like any other operation, so nothing else (a teardown, which would
remove the throwaway containers: they carry the store's label) runs beside it.
"""

import json
import logging
import re
import shutil
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from backups import restic
from backups.models import BackupRun, RunStatus
from backups.services.stack_io import (
    DB_DUMP,
    database_import,
    staging_directory,
    staging_path,
    volume_restore,
    web_volumes,
)
from provisioning import docker_client, egress
from provisioning.exceptions import JobConflict
from provisioning.kinds import Log
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue
from provisioning.stacks import stack_for
from provisioning.stacks.base import DB_ROOT_CLIENT_ENV
from provisioning.steps import service_container_ensure, wait_db
from stores.exceptions import InvalidTransition
from stores.models import Store
from stores.services import store_credentials

logger = logging.getLogger(__name__)
KIND = "verify"  # the job kind (backups.kinds)
MB = 1024 * 1024
# mariadb-dump quotes table names in backticks, doubling any backtick inside a name.
INSERT = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)` VALUES ")
EXPECTED_ROWS = "expected-rows.json"


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


def _row_counts(container: str, tables: list[str], base_url: docker_client.EngineRef) -> Counter:
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
        command=["sh", "-c", f'{DB_ROOT_CLIENT_ENV} mariadb -uroot "$MARIADB_DATABASE" -N -B -e "$0"', union],
        base_url=base_url,
    )
    if code != 0:
        raise VerificationFailed(f"counting rows failed: {output[-1000:]}")
    counts = Counter()
    for line in output.strip().splitlines():
        index, count = line.split("\t")
        counts[tables[int(index)]] = int(count)
    return counts


def _front_page_status(container: str, domain: str, base_url: docker_client.EngineRef) -> str:
    """The status line the web container itself answers on port 80 for the store's domain (bash, no curl)."""
    script = (
        'exec 3<>/dev/tcp/127.0.0.1/80 && printf "GET / HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n" '
        '"$0" >&3 && head -n1 <&3'
    )
    code, output = docker_client.container_exec(
        name=container, command=["bash", "-c", script, domain], base_url=base_url
    )
    return output.strip() if code == 0 else ""


def _run_of(job_id: int) -> BackupRun:
    return BackupRun.objects.select_related("store__host", "store__plan").get(verify_job_id=job_id)


class _Copy:
    """The throwaway copy of one snapshot: names, labels and staging, all derived from the backup run."""

    def __init__(self, run: BackupRun):
        self.run = run
        self.store = run.store
        self.stack = stack_for(run.store)
        self.base_url = run.store.host.engine if run.store.host else None
        self.prefix = f"{settings.STORE_OBJECT_PREFIX}-verify-{run.pk}"
        self.label = f"shophosting.verify={run.pk}"
        self.labels = {**self.stack.labels, "shophosting.verify": str(run.pk)}
        self.network = f"{self.prefix}-net"
        self.staging_name = f"verify-{run.pk}"

    def services(self) -> dict:
        """role -> the service spec, with the store's credentials (which a lost key cannot decrypt)."""
        return {s.role: s for s in self.stack.services(credentials=store_credentials(self.store))}

    def start(self, role: str, volumes: dict[str, str]) -> str:
        spec = self.services()[role]
        name = f"{self.prefix}-{role}"
        service_container_ensure(
            spec, name=name, network=self.network, labels=self.labels, volumes=volumes, base_url=self.base_url
        )
        return name

    def volumes(self) -> dict[str, str]:
        return {f"{self.prefix}-{suffix}": mount for suffix, mount in web_volumes(self.store).items()}

    def remove(self) -> None:
        shutil.rmtree(staging_path(self.staging_name), ignore_errors=True)
        docker_client.labelled_objects_remove(label=self.label, base_url=self.base_url)


def step_copy(store: Store, log: Log, *, job_id: int) -> None:
    run = _run_of(job_id)
    if run.status != RunStatus.SUCCEEDED or not run.snapshot_id:
        raise VerificationFailed(f"backup {run.pk} has no store snapshot to verify")
    copy = _Copy(run)
    # The copy cannot start without the store's credentials: a store whose key is lost fails here, with
    # that reason, before any snapshot is read.
    copy.services()
    copy.remove()  # what an earlier check of this snapshot left
    staging = staging_directory(copy.staging_name)
    restic.dump(run.snapshot_id, f"/{DB_DUMP}", into=staging / DB_DUMP)
    expected = dump_row_counts(staging / DB_DUMP)
    (staging / EXPECTED_ROWS).write_text(json.dumps(expected))
    log(f"snapshot {run.snapshot_id[:8]}: dump read, {len(expected)} tables with rows")
    docker_client.network_ensure(
        name=copy.network,
        labels=copy.labels,
        internal=True,
        bridge=egress.bridge_name(copy.network),  # the host's fence keeps the copy off the host's services too
        base_url=copy.base_url,
    )
    for (volume, mount), suffix in zip(copy.volumes().items(), web_volumes(store), strict=True):
        docker_client.volume_ensure(name=volume, labels=copy.labels, base_url=copy.base_url)
        volume_restore(
            snapshot_id=run.snapshot_id,
            suffix=suffix,
            mount=mount,
            volume=volume,
            staging=staging,
            labels=copy.labels,
            base_url=copy.base_url,
        )
        log(f"{suffix}: files restored into the copy")
    db = copy.start("db", {})
    if any(s.role == "cache" for s in copy.stack.services()):
        copy.start("cache", {})
    wait_db(store, lambda message: None, timeout=120, container=db)
    database_import(container=db, dump=staging / DB_DUMP, base_url=copy.base_url)
    log("dump imported into the copy's database")


def step_rows(store: Store, log: Log, *, job_id: int) -> None:
    copy = _Copy(_run_of(job_id))
    expected = Counter(json.loads((staging_path(copy.staging_name) / EXPECTED_ROWS).read_text()))
    actual = _row_counts(f"{copy.prefix}-db", sorted(expected), copy.base_url)
    if actual != expected:
        differ = {t: (expected[t], actual.get(t, 0)) for t in expected if expected[t] != actual.get(t, 0)}
        raise VerificationFailed(f"row counts differ from the dump (table: dump, restored): {differ}")
    log(f"every table holds as many rows as the dump ({sum(expected.values())} rows)")


def step_front_page(store: Store, log: Log, *, job_id: int) -> None:
    copy = _Copy(_run_of(job_id))
    web = copy.start("web", copy.volumes())
    status_line = ""

    def answers() -> bool:
        nonlocal status_line
        status_line = _front_page_status(web, store.domain, copy.base_url)
        return " 200 " in f"{status_line} "

    if not _wait(answers, settings.STORE_WEB_READY_TIMEOUT):
        raise VerificationFailed(f"the restored front page did not answer 200 (got {status_line or 'nothing'!r})")
    log("the copy's front page answers 200")


def on_success(job_id: int) -> None:
    BackupRun.objects.filter(verify_job_id=job_id).update(verified_at=timezone.now(), verify_error="")


def on_failure(job_id: int, summary: str) -> None:
    """The snapshot's verify_error; staff are mailed once the failure is committed."""
    run = _run_of(job_id)
    error = summary.removeprefix("VerificationFailed: ")
    BackupRun.objects.filter(pk=run.pk).update(verify_error=error[:5000], verified_at=None)
    subject = f"Backup verification failed for {run.store.domain}"
    body = f"Snapshot {run.snapshot_id[:8]} of store {run.store_id} did not restore: {error}"
    transaction.on_commit(lambda: mail_admins(subject, body))


def after(job_id: int, succeeded: bool) -> None:
    _Copy(_run_of(job_id)).remove()


def retry(job_id: int, actor: User | None) -> ProvisioningJob:
    return verify_enqueue(run_id=_run_of(job_id).pk, actor=actor).verify_job


def timeout_seconds() -> int:
    """One restic dump for the database and one per web volume, each within RESTIC_TIMEOUT, and two waits."""
    return 4 * settings.RESTIC_TIMEOUT + 2 * settings.STORE_WEB_READY_TIMEOUT + 600


def verify_enqueue(*, run_id: int, actor: User | None = None) -> BackupRun:
    """Queue a check that backup `run_id` restores; StoreBusy (JobConflict) while its store is busy."""
    with transaction.atomic():
        run = BackupRun.objects.select_for_update().get(pk=run_id)
        if run.store_id is None or run.status != RunStatus.SUCCEEDED or not run.snapshot_id:
            raise VerificationFailed(f"backup {run.pk} has no store snapshot to verify")
        run.verify_job = job_enqueue(store_id=run.store_id, kind=KIND, actor=actor)
        run.save(update_fields=["verify_job"])
    return run


def backups_verify(*, store_id: int | None = None, now=None, dry_run: bool = False) -> list[BackupRun]:
    """Queue a restore-check of the newest snapshot of each active or suspended store (or of one store) not
    verified in the last 7 days. A store that is busy (another operation runs) is checked next time."""
    now = now or timezone.now()
    stores = Store.objects.filter(status__in=[Store.Status.ACTIVE, Store.Status.SUSPENDED])
    if store_id is not None:
        stores = stores.filter(pk=store_id)
    queued = []
    for store in stores.order_by("pk"):
        latest = store.backup_runs.filter(status=RunStatus.SUCCEEDED, forgotten_at=None).exclude(snapshot_id="").first()
        if latest is None or (store_id is None and latest.verified_at and latest.verified_at > now - timedelta(days=7)):
            continue
        if dry_run:
            queued.append(latest)
            continue
        try:
            queued.append(verify_enqueue(run_id=latest.pk))
        except (JobConflict, InvalidTransition) as exc:
            logger.info("verification of store %s not queued: %s", store.pk, exc)
    return queued


def _wait(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False
