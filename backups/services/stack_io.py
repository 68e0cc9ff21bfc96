"""Reading and writing a store's data through its containers: the database dump and import inside the database
container (the root password from the container's own secret file, so no password is on a command line), the web
volumes as the engine's tar archives (so ownership and modes survive), and the local staging directory."""

import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from backups import restic
from provisioning import docker_client
from provisioning.stacks import stack_for
from provisioning.stacks.base import DB_ROOT_CLIENT_ENV
from provisioning.steps import wait_db
from stores.models import Store

DB_DUMP = "db.sql"
# Dumps inside the store's database container, reading the root password from the container's own secret
# file (the official image's MARIADB_ROOT_PASSWORD_FILE) into the client's environment, so no password
# appears in any command line.
DUMP_COMMAND = [
    "sh",
    "-c",
    f"export {DB_ROOT_CLIENT_ENV}; "
    'exec mariadb-dump --single-transaction --quick --routines --triggers --events -uroot "$MARIADB_DATABASE"',
]
# The dump to import is copied into the data volume: the engine's archive API writes only into volumes of
# a container whose root is read-only (not into its /tmp, a tmpfs the engine does not see).
IMPORT_DIR = "/var/lib/mysql"
IMPORT_FILE = "shophosting-restore.sql"
IMPORT_COMMAND = [
    "sh",
    "-c",
    f"set -e; export {DB_ROOT_CLIENT_ENV}; "
    'mariadb -uroot -e "DROP DATABASE IF EXISTS \\`$MARIADB_DATABASE\\`; CREATE DATABASE \\`$MARIADB_DATABASE\\`"; '
    f'mariadb -uroot "$MARIADB_DATABASE" < {IMPORT_DIR}/{IMPORT_FILE}; rm -f {IMPORT_DIR}/{IMPORT_FILE}',
]


def staging_path(name: str) -> Path:
    return Path(settings.BACKUP_STAGING_DIR) / name


def staging_directory(name: str) -> Path:
    """An empty private directory under BACKUP_STAGING_DIR (what a run with that name left there is removed)."""
    path = staging_path(name)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    return path


def web_volumes(store: Store) -> dict[str, str]:
    """volume suffix -> mount path of every volume the web service keeps its files in."""
    web = next(s for s in stack_for(store).services() if s.role == "web")
    return dict(web.volumes)


def database_running(store: Store) -> bool:
    status, _ = docker_client.container_state(name=stack_for(store).container_name("db"), base_url=store.host.engine)
    return status == "running"


def database_start(store: Store) -> None:
    """Start a stopped database container (a suspended store's) and wait until it answers."""
    docker_client.container_start(name=stack_for(store).container_name("db"), base_url=store.host.engine)
    wait_db(store, lambda message: None, timeout=120)


def database_stop(store: Store) -> None:
    docker_client.container_stop(name=stack_for(store).container_name("db"), base_url=store.host.engine)


def database_dump(store: Store, into: Path) -> int:
    """The store's database as a mariadb-dump file at `into`; returns its size in bytes."""
    return docker_client.container_exec_to_file(
        name=stack_for(store).container_name("db"),
        command=DUMP_COMMAND,
        path=str(into),
        base_url=store.host.engine,
    )


def volumes_archive(store: Store, into: Path) -> list[str]:
    """Each web volume as the engine's archive, `into/<suffix>.tar`; returns the suffixes."""
    into.mkdir(exist_ok=True)
    volumes = web_volumes(store)
    for suffix, mount in volumes.items():
        docker_client.container_archive_get(
            name=stack_for(store).container_name("web"),
            path=mount,
            tar_path=str(into / f"{suffix}.tar"),
            base_url=store.host.engine,
        )
    return list(volumes)


def tar_single_file(source: Path, arcname: str, into: Path) -> None:
    with tarfile.open(into, "w") as archive:
        archive.add(source, arcname=arcname)


def database_import(*, container: str, dump: Path, base_url: docker_client.EngineRef) -> None:
    """Replace the database in `container` (a store's, or a verification's throwaway one) by the dump."""
    archive = dump.with_suffix(".tar")
    tar_single_file(dump, IMPORT_FILE, archive)
    docker_client.container_archive_put(
        name=container,
        path=IMPORT_DIR,
        tar_path=str(archive),
        base_url=base_url,
    )
    code, output = docker_client.container_exec(name=container, command=IMPORT_COMMAND, base_url=base_url)
    if code != 0:
        raise docker_client.ProvisioningError(f"the dump does not import: {output[-2000:]}")


def volume_restore(
    *,
    snapshot_id: str,
    suffix: str,
    mount: str,
    volume: str,
    staging: Path,
    labels: dict,
    base_url: docker_client.EngineRef,
    rewrite: Callable[[Path, str], None] | None = None,
) -> None:
    """Make `volume` hold exactly the snapshot's files/<suffix>.tar (the engine's archive of `mount`).
    `rewrite(archive, top)` may change the archive first (a staging copy's own mu-plugin goes in)."""
    archive = staging / f"{suffix}.tar"
    restic.dump(snapshot_id, f"/files/{suffix}.tar", into=archive)
    if rewrite is not None:
        rewrite(archive, Path(mount).name)
    docker_client.volume_contents_replace(
        volume=volume,
        top_directory=Path(mount).name,
        tar_path=str(archive),
        image=settings.DOCKER_BASE_IMAGE,
        labels=labels,
        base_url=base_url,
    )
