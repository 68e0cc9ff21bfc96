"""Moving a store's data between a live store and its staging copy, on the engine that runs both: the database
as a mariadb-dump (backups' dump and import, inside the database containers, the root password from each
container's own secret file) and the web volumes as the engine's tar archives (ownership and modes kept),
through a private directory under BACKUP_STAGING_DIR. Nothing goes through restic for a live copy; a copy
made from one of the live store's backups reads that snapshot with the restore's own steps (backups.services
.restore: the dump imported, each web volume replaced by the snapshot's archive), which alone run restic."""

import io
import re
import shutil
import tarfile
from pathlib import Path

from django.conf import settings

from backups.services.restore import database_put_back, files_put_back
from backups.services.stack_io import (
    IMPORT_DIR,
    IMPORT_FILE,
    database_dump,
    database_import,
    staging_directory,
    tar_single_file,
    volumes_archive,
    web_volumes,
)
from provisioning import docker_client
from provisioning.exceptions import ProvisioningError
from provisioning.kinds import Log
from provisioning.stacks import stack_for
from provisioning.stacks.base import DB_ROOT_CLIENT_ENV
from provisioning.steps import wait_db
from stores.models import Store

# The mu-plugin that makes a WordPress copy a staging copy (mail captured, gateways in test mode); it lives in
# the copy's own wp-content/mu-plugins, which the image's loader reads, and never travels to the live store.
STAGING_PLUGIN_SOURCE = Path(__file__).parent / "wordpress" / "shophosting-staging.php"
STAGING_PLUGIN_MEMBER = "mu-plugins/shophosting-staging.php"  # inside wp-content
WWW_DATA = 33
# Volumes a push never sends to live: Magento's install configuration (app/etc/env.php: its database password,
# crypt key and relay password are the live store's own; a copy receives live's on create and refresh).
NEVER_PUSHED = {"env"}
TABLE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
TABLES_COMMAND = [
    "sh",
    "-c",
    f'export {DB_ROOT_CLIENT_ENV}; exec mariadb -uroot -N -B -e "SHOW TABLES" "$MARIADB_DATABASE"',
]
# The chosen tables only; table names are passed as arguments ($@), never spliced into the shell text.
TABLES_DUMP_COMMAND = [
    "sh",
    "-c",
    f"export {DB_ROOT_CLIENT_ENV}; "
    'exec mariadb-dump --single-transaction --quick --triggers -uroot "$MARIADB_DATABASE" "$@"',
    "sh",
]
# The whole database but the tables given as arguments (the staging copy's captured mail, on a push).
FULL_DUMP_COMMAND = [
    "sh",
    "-c",
    f"export {DB_ROOT_CLIENT_ENV}; "
    'for table in "$@"; do shift; set -- "$@" "--ignore-table=$MARIADB_DATABASE.$table"; done; '
    'exec mariadb-dump --single-transaction --quick --routines --triggers --events -uroot "$@" "$MARIADB_DATABASE"',
    "sh",
]
# The table the staging mu-plugin keeps captured mail in (after the WordPress table prefix).
CAPTURED_MAIL_TABLE = "shophosting_captured_mail"
# Replaces only the tables the dump holds (its DROP TABLE IF EXISTS and CREATE TABLE), the rest untouched.
TABLES_IMPORT_COMMAND = [
    "sh",
    "-c",
    f"set -e; export {DB_ROOT_CLIENT_ENV}; "
    f'mariadb -uroot "$MARIADB_DATABASE" < {IMPORT_DIR}/{IMPORT_FILE}; rm -f {IMPORT_DIR}/{IMPORT_FILE}',
]


def _work_directory(source: Store, target: Store) -> Path:
    return staging_directory(f"staging-copy-{source.pk}-to-{target.pk}")


def database_tables(store: Store) -> list[str]:
    """The tables of the store's application database, as its database server lists them."""
    code, output = docker_client.container_exec(
        name=stack_for(store).container_name("db"), command=TABLES_COMMAND, base_url=store.host.engine
    )
    if code != 0:
        raise ProvisioningError(f"the tables of store {store.pk} could not be listed: {output.strip()[-500:]}")
    return [line.strip() for line in output.splitlines() if line.strip()]


def tables_refusal(tables: list[str], known: list[str]) -> str | None:
    """Why a push cannot be limited to `tables`, in plain words; None when it can."""
    malformed = [name for name in tables if not TABLE_NAME.fullmatch(name)]
    if malformed:
        return f"These are not table names: {', '.join(malformed)} (letters, digits and underscores only)."
    missing = [name for name in tables if name not in known]
    if missing:
        return f"The staging database has no table {', '.join(missing)}; nothing was pushed."
    return None


def database_copy(
    *, source: Store, target: Store, log: Log, tables: list[str] | None = None, to_live: bool = False
) -> None:
    """`target`'s database becomes `source`'s (all of it, or only `tables`, the others left as they are).
    `to_live`: a push from a staging copy, whose captured mail stays behind (it is the copy's, not the shop's)."""
    wait_db(target, log, timeout=settings.STORE_WEB_READY_TIMEOUT)
    work = _work_directory(source, target)
    dump = work / "db.sql"
    left_out = [t for t in database_tables(source) if t.endswith(CAPTURED_MAIL_TABLE)] if to_live else []
    limited = bool(tables)
    tables = [table for table in tables or [] if table not in left_out]
    if limited and not tables:
        raise ProvisioningError("The chosen tables hold only the staging copy's captured mail; nothing was pushed.")
    try:
        if limited:
            refusal = tables_refusal(tables, database_tables(source))
            if refusal:
                raise ProvisioningError(refusal)
            size = docker_client.container_exec_to_file(
                name=stack_for(source).container_name("db"),
                command=[*TABLES_DUMP_COMMAND, *tables],
                path=str(dump),
                base_url=source.host.engine,
            )
            archive = dump.with_suffix(".tar")
            tar_single_file(dump, IMPORT_FILE, archive)
            container = stack_for(target).container_name("db")
            docker_client.container_archive_put(
                name=container, path=IMPORT_DIR, tar_path=str(archive), base_url=target.host.engine
            )
            code, output = docker_client.container_exec(
                name=container, command=TABLES_IMPORT_COMMAND, base_url=target.host.engine
            )
            if code != 0:
                raise ProvisioningError(f"the tables do not import: {output.strip()[-1000:]}")
            log(f"tables {', '.join(tables)} copied from store {source.pk} to store {target.pk} ({size} bytes)")
        else:
            if left_out:
                size = docker_client.container_exec_to_file(
                    name=stack_for(source).container_name("db"),
                    command=[*FULL_DUMP_COMMAND, *left_out],
                    path=str(dump),
                    base_url=source.host.engine,
                )
                log(f"left on staging: {', '.join(left_out)} (its captured mail)")
            else:
                size = database_dump(source, dump)
            database_import(container=stack_for(target).container_name("db"), dump=dump, base_url=target.host.engine)
            log(f"database copied from store {source.pk} to store {target.pk} ({size} bytes)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def files_copy(*, source: Store, target: Store, log: Log, staging_plugin: bool) -> None:
    """`target`'s web volumes hold exactly `source`'s files. `staging_plugin`: the target is a staging copy,
    and gets the staging mu-plugin; otherwise (a push to live) the plugin is left out of what arrives, and
    the volumes in NEVER_PUSHED stay live's."""
    work = _work_directory(source, target)
    try:
        suffixes = volumes_archive(source, work / "files")
        if not staging_plugin:
            kept = [suffix for suffix in suffixes if suffix in NEVER_PUSHED]
            suffixes = [suffix for suffix in suffixes if suffix not in NEVER_PUSHED]
            if kept:
                log(f"kept as they are on live: {', '.join(kept)} (its own install configuration)")
        stack, mounts = stack_for(target), web_volumes(target)
        for suffix in suffixes:
            archive = work / "files" / f"{suffix}.tar"
            top = Path(mounts[suffix]).name
            if top == "wp-content":
                _staging_plugin_set(archive, top=top, present=staging_plugin)
            docker_client.volume_contents_replace(
                volume=stack.volume_name(suffix),
                top_directory=top,
                tar_path=str(archive),
                image=settings.DOCKER_BASE_IMAGE,
                labels=stack.labels,
                base_url=target.host.engine,
            )
        log(f"files copied from store {source.pk} to store {target.pk}: {', '.join(suffixes)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def database_from_snapshot(*, snapshot_id: str, target: Store, log: Log) -> None:
    """`target`'s database becomes the one in the snapshot (one of its live store's backups)."""
    wait_db(target, log, timeout=settings.STORE_WEB_READY_TIMEOUT)
    work = staging_directory(f"staging-snapshot-{target.pk}-database")
    try:
        database_put_back(target, log, snapshot_id=snapshot_id, staging=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def files_from_snapshot(*, snapshot_id: str, target: Store, log: Log) -> None:
    """`target`'s web volumes hold exactly the snapshot's files, plus the staging mu-plugin (a staging copy)."""

    def with_staging_plugin(archive: Path, top: str) -> None:
        if top == "wp-content":
            _staging_plugin_set(archive, top=top, present=True)

    work = staging_directory(f"staging-snapshot-{target.pk}-files")
    try:
        files_put_back(target, log, snapshot_id=snapshot_id, staging=work, rewrite=with_staging_plugin)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _staging_plugin_set(archive: Path, *, top: str, present: bool) -> None:
    """Rewrite the wp-content archive with the staging mu-plugin in it (a staging copy) or without it."""
    member = f"{top}/{STAGING_PLUGIN_MEMBER}"
    rewritten = archive.with_suffix(".rewritten.tar")
    with tarfile.open(archive) as old, tarfile.open(rewritten, "w") as new:
        names = set()
        for info in old:
            names.add(info.name.rstrip("/"))
            if info.name == member:
                continue
            new.addfile(info, old.extractfile(info) if info.isfile() else None)
        if present:
            directory = f"{top}/mu-plugins"
            if directory not in names:
                info = tarfile.TarInfo(directory)
                info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, WWW_DATA, WWW_DATA
                new.addfile(info)
            content = STAGING_PLUGIN_SOURCE.read_bytes()
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.uid, info.gid = len(content), 0o644, WWW_DATA, WWW_DATA
            new.addfile(info, io.BytesIO(content))
    rewritten.replace(archive)
