"""The `restore_elsewhere` job kind (backups/services/recovery.py), registered from BackupsConfig.ready(): a store
of a host that does not answer, rebuilt on another host from its latest backup. Registered by backups, since
provisioning, which owns the heartbeat and placement, sits below it."""

from backups.services import recovery
from provisioning.kinds import JobKind, Step
from provisioning.steps import app_start, data_services_start, network_and_volumes, vhost_maintenance, vhost_proxy
from stores.models import Store

KINDS = (
    JobKind(
        name=recovery.KIND,
        title="Restore on another server",
        steps=(
            Step("place", "Reserve a place on another server", recovery.step_place, with_job=True),
            # Once the store is the new host's: until it is routed there, a maintenance page, never the old
            # host's copy should that host answer meanwhile (its heartbeat removes that copy).
            Step("maintenance", "Show the maintenance page", vhost_maintenance),
            Step("images", "Give that server the store's software", recovery.step_images),
            Step("network", "Create the network and volumes", network_and_volumes),
            Step("data_services", "Start the database and cache", data_services_start),
            Step("database", "Restore the database from the latest backup", recovery.step_database, with_job=True),
            Step("files", "Restore the files from the latest backup", recovery.step_files, with_job=True),
            Step("app", "Start the web server and check that it answers", app_start),
            Step("proxy", "Route the domain to the new server", vhost_proxy),
        ),
        store_statuses=frozenset({Store.Status.UNREACHABLE}),
        queue="backups",  # it runs restic
        timeout_seconds=recovery.timeout_seconds,
        on_start=recovery.on_start,
        on_success=recovery.on_success,
        on_failure=recovery.on_failure,
        after=recovery.after,
        retry=recovery.retry,
    ),
)
