"""The `db_loopback_root` job kind: root over TCP on a store database's loopback needs the root password.

`mariadb-install-db` leaves root@127.0.0.1 and root@::1 without a password, so until 2026-12 every store's
database let any process of its database container sign in as root over TCP. The image
(deploy/images/mariadb/entrypoint.sh) now gives them root@localhost's password when it initialises a data
directory, and once on an older directory when a container of the new image starts on it. But an existing
store keeps its database container (and so its old image) across restarts and updates, which recreate only the
web container: `manage.py stores_db_loopback_root` queues this job for every active store instead. It runs
two `ALTER USER` statements in the running database container, through the socket with the secret file's root
password (the one root@localhost has, rotations included), and leaves the image's marker, so a container of
the new image never does it again. A store done already says so and changes nothing.
"""

from provisioning import docker_client
from provisioning.exceptions import JobConflict, ProvisioningError
from provisioning.kinds import JobKind, Log, Step
from provisioning.services import job_enqueue
from provisioning.stacks import stack_for
from stores.exceptions import InvalidTransition
from stores.models import Store

KIND = "db_loopback_root"
MARKER = "/var/lib/mysql/.shophosting-loopback-root-password"  # the image's own (entrypoint.sh)
# The password comes from the container's secret file; token_urlsafe's alphabet only, so it cannot end the SQL
# string it is written into.
LOOPBACK_ROOT_SET = rf"""
set -euo pipefail
if [[ -f {MARKER} ]]; then echo "root@127.0.0.1 and root@::1 had a password already"; exit 0; fi
password=$(cat "$MARIADB_ROOT_PASSWORD_FILE")
if [[ ! "$password" =~ ^[A-Za-z0-9_-]+$ ]]; then
    echo "the root password has characters outside [A-Za-z0-9_-]" >&2
    exit 1
fi
MYSQL_PWD="$password" mariadb -uroot -N -B -e "ALTER USER IF EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '$password';
    ALTER USER IF EXISTS 'root'@'::1' IDENTIFIED BY '$password'; FLUSH PRIVILEGES;"
touch {MARKER}
echo "root@127.0.0.1 and root@::1 now need the root password"
"""


def loopback_root_set(store: Store, log: Log) -> None:
    name = stack_for(store).container_name("db")
    command = ["bash", "-c", LOOPBACK_ROOT_SET]
    code, output = docker_client.container_exec(name=name, command=command, base_url=store.host.engine)
    if code != 0:
        raise ProvisioningError(f"setting the loopback root passwords failed (exit {code}): {output.strip()[-500:]}")
    log(output.strip())


KINDS = (
    JobKind(
        name=KIND,
        title="Require the root password over loopback TCP",
        steps=(Step("accounts", "Give root@127.0.0.1 and root@::1 the root password", loopback_root_set),),
        store_statuses=frozenset({Store.Status.ACTIVE}),
    ),
)


def loopback_root_jobs_enqueue() -> tuple[list[tuple[Store, object]], list[tuple[Store, str]]]:
    """A job for every active store on a host: (store, job) queued, and (store, why not) for those busy now
    (run the command again later) or no longer active. Suspended stores have their containers stopped: they get
    it from the image when they next start on a new one, or from this command once resumed."""
    queued, refused = [], []
    for store in Store.objects.filter(status=Store.Status.ACTIVE, host__isnull=False).order_by("pk"):
        try:
            queued.append((store, job_enqueue(store_id=store.pk, kind=KIND)))
        except (JobConflict, InvalidTransition) as exc:
            refused.append((store, str(exc)))
    return queued, refused
