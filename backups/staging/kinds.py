"""The staging job kinds on the one engine (provisioning/kinds.py), registered in StagingConfig.ready():

    staging_create   (the copy's job)  allocate → network → database and cache → copy the database →
                                       copy the files → start → route (basic auth, noindex) → certificate
    staging_refresh  (the copy's job)  stop the copy's app → copy the database → copy the files → start
                     (both copy from the live store as it is, or from the backup the run names: source_backup)
    staging_push     (the live store's job)  check → pre-push backup → maintenance page → stop →
                                       push the database (all, or the chosen tables) → push the files → start
                                       → route;  any failure after the backup: put_back (the undo step)
    staging_undo     (the live store's job)  maintenance page → stop → the pre-push backup put back → start →
                                       route

A push runs on the live store, so it holds the live store's one-operation lock while it changes it, and its
pre-push backup is the live store's (provisioning.safety, the update's safety net: backups' pre-update
backup and put-back). A database-only or files-only push has the other step skipped from the start.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from backups.models import BackupRun
from backups.services.pre_update import pre_update_backup_take
from backups.staging import copy
from backups.staging.models import StagingRun
from backups.staging.services import (
    run_transition,
    staging_create_retry,
    staging_push,
    staging_refresh,
    staging_undo,
)
from provisioning import safety
from provisioning.exceptions import ProvisioningError
from provisioning.kinds import JobKind, Log, Step
from provisioning.models import JobStep, StoreImage
from provisioning.steps import (
    allocate,
    app_start,
    app_stop,
    app_urls_replace,
    data_services_start,
    network_and_volumes,
    tls_certificate,
    vhost_maintenance,
    vhost_proxy,
)
from provisioning.store_images import store_image_set
from stores.exceptions import InvalidTransition
from stores.models import Store
from stores.services import store_event_record

S = Store.Status
R = StagingRun.Status
CREATE, REFRESH, PUSH, UNDO = "staging_create", "staging_refresh", "staging_push", "staging_undo"
PRE_BACKUP_STEP, MAINTENANCE_STEP, STOP_STEP, PUT_BACK_STEP = "pre_backup", "maintenance", "stop", "put_back"


def _run(job_id: int) -> StagingRun:
    return StagingRun.objects.select_related(
        "live__host", "staging__host", "live__plan", "staging__plan", "source_backup"
    ).get(job_id=job_id)


# --- The copy's steps (create, refresh): live → staging ------------------------------------------------------


def step_images(store: Store, log: Log, *, job_id: int) -> None:
    """The copy runs what its live store runs (an updated live store may be ahead of the day's defaults that
    allocate recorded), so what is tried on staging is what live would do."""
    run = _run(job_id)
    for role, image in StoreImage.objects.filter(store=run.live).values_list("role", "image"):
        store_image_set(store_id=store.pk, role=role, image=image)
        log(f"{role}: {image}, as the live store")


def step_copy_database(store: Store, log: Log, *, job_id: int) -> None:
    run = _run(job_id)
    if run.source_backup_id:
        log(f"from the live store's backup #{run.source_backup_id}")
        copy.database_from_snapshot(snapshot_id=run.source_backup.snapshot_id, target=run.staging, log=log)
    else:
        copy.database_copy(source=run.live, target=run.staging, log=log)


def step_copy_files(store: Store, log: Log, *, job_id: int) -> None:
    run = _run(job_id)
    if run.source_backup_id:
        log(f"from the live store's backup #{run.source_backup_id}")
        copy.files_from_snapshot(snapshot_id=run.source_backup.snapshot_id, target=run.staging, log=log)
    else:
        copy.files_copy(source=run.live, target=run.staging, log=log, staging_plugin=True)
    log("the staging copy captures its mail and runs its payment gateways in test mode (its own mu-plugin)")


def step_urls(store: Store, log: Log) -> None:
    """The store's application URLs are its own names again after its database came from the other store:
    Magento keeps its base URLs in its database (the stack's url_replace_commands, as a primary-name change
    runs them). WordPress takes its URLs from the stack (WP_HOME, WP_SITEURL): nothing to do."""
    if store.platform != "magento":
        log("WordPress takes its addresses from the stack: nothing to change")
        return
    app_urls_replace(store, log)


# --- The push's steps: staging → live ------------------------------------------------------------------------


def step_check(store: Store, log: Log, *, job_id: int) -> None:
    run = _run(job_id)
    run.staging.refresh_from_db()
    if run.staging.status != S.ACTIVE:
        raise ProvisioningError(f"the staging copy is {run.staging.get_status_display().lower()}; nothing was pushed")
    if run.tables:
        refusal = copy.tables_refusal(run.tables, copy.database_tables(run.staging))
        if refusal:
            raise ProvisioningError(refusal)
    log(f"pushing {run.get_scope_display().lower()}" + (f" (tables {', '.join(run.tables)})" if run.tables else ""))


def step_pre_backup(store: Store, log: Log, *, job_id: int) -> None:
    """The update's safety net, called directly (staging is part of backups) for its own kind of backup, so
    the merchant's list names it for what it is ("Before a push from staging"); it is put back through
    provisioning.safety like an update's."""
    reference = pre_update_backup_take(
        store_id=store.pk,
        job_id=job_id,
        reason="before a push from its staging copy",
        log=log,
        kind=BackupRun.Kind.PRE_PUSH,
    )
    StagingRun.objects.filter(job_id=job_id).update(backup_reference=reference)


def step_push_database(store: Store, log: Log, *, job_id: int) -> None:
    run = _run(job_id)
    copy.database_copy(source=run.staging, target=run.live, log=log, tables=run.tables or None, to_live=True)


def step_push_files(store: Store, log: Log, *, job_id: int) -> None:
    run = _run(job_id)
    copy.files_copy(source=run.staging, target=run.live, log=log, staging_plugin=False)


def step_put_back(store: Store, log: Log, *, job_id: int) -> None:
    """After a failed push step: the live store's data from its pre-push backup, started and routed."""
    run = _run(job_id)
    if _step_started(job_id, STOP_STEP) and run.backup_reference:
        app_stop(store, log)
        safety.snapshot_restore(store_id=store.pk, reference=run.backup_reference, log=log)
        app_start(store, log)
        log("the live store's data is back as it was before the push")
    else:
        log("the live store's data was not changed")
    if _step_started(job_id, MAINTENANCE_STEP):
        vhost_proxy(store, log)


def step_undo_restore(store: Store, log: Log, *, job_id: int) -> None:
    run = _run(job_id)
    safety.snapshot_restore(store_id=store.pk, reference=run.undoes.backup_reference, log=log)


def _step_started(job_id: int, name: str) -> bool:
    return (
        JobStep.objects.filter(job_id=job_id, name=name)
        .exclude(status__in=[JobStep.Status.PENDING, JobStep.Status.SKIPPED])
        .exists()
    )


# --- Hooks (inside the engine's transaction that moves the job) ---------------------------------------------

MESSAGES = {
    StagingRun.Kind.CREATE: ("Staging copy ready at {name}.", "The staging copy could not be made."),
    StagingRun.Kind.REFRESH: ("Staging copy refreshed from live.", "Refreshing the staging copy failed."),
    StagingRun.Kind.PUSH: (
        "Staging pushed to live ({scope}); the backup taken before it can undo it.",
        "The push from staging failed; your live store is as it was before it.",
    ),
    StagingRun.Kind.UNDO: ("The push was undone: your live store is back as before it.", "Undoing the push failed."),
}


def on_start(job_id: int) -> None:
    run_transition(_run(job_id).pk, R.RUNNING)


def on_success(job_id: int) -> None:
    run = run_transition(_run(job_id).pk, R.SUCCEEDED, finished_at=timezone.now())
    message = MESSAGES[run.kind][0].format(name=run.staging.domain, scope=run.get_scope_display().lower())
    store_event_record(store_id=run.live_id, note=f"job #{job_id}: {run.kind} succeeded", message=message)


def on_failure(job_id: int, summary: str) -> None:
    run = _run(job_id)
    if run.status not in (R.QUEUED, R.RUNNING):
        return
    run = run_transition(run.pk, R.FAILED, note=summary, error=summary[:10000], finished_at=timezone.now())
    message = MESSAGES[run.kind][1]
    put_back = JobStep.objects.filter(job_id=job_id, name=PUT_BACK_STEP, status=JobStep.Status.SUCCEEDED).exists()
    if run.kind == StagingRun.Kind.PUSH and _step_started(job_id, STOP_STEP) and not put_back:
        message = "The push from staging failed and your live store could not be put back yet; our team is on it."
    store_event_record(store_id=run.live_id, note=f"job #{job_id}: {summary}", message=message)


def retry(job_id: int, actor) -> object:
    """A failed staging job again, as a new run of the same request (the engine's Retry, from the admin)."""
    run = _run(job_id)
    try:
        if run.kind == StagingRun.Kind.CREATE:
            again = staging_create_retry(staging_store_id=run.staging_id, source=run.source_backup_id, actor=actor)
        elif run.kind == StagingRun.Kind.REFRESH:
            again = staging_refresh(live_store_id=run.live_id, source=run.source_backup_id, actor=actor)
        elif run.kind == StagingRun.Kind.PUSH:
            again = staging_push(live_store_id=run.live_id, scope=run.scope, tables=run.tables, actor=actor)
        else:
            again = staging_undo(push_run_id=run.undoes_id, actor=actor)
    except ValidationError as exc:  # the engine's callers (the admin's Retry) show InvalidTransition's words
        raise InvalidTransition(" ".join(exc.messages)) from None
    return again.job


HOOKS = {"on_start": on_start, "on_success": on_success, "on_failure": on_failure, "retry": retry}
COPY_TIMEOUT = lambda: 2 * settings.RESTIC_TIMEOUT + 2 * settings.STORE_WEB_READY_TIMEOUT + 600  # noqa: E731
KINDS = (
    JobKind(
        name=CREATE,
        title="Create the staging copy",
        steps=(
            Step("allocate", "Reserve a port beside the live store", allocate),
            Step("images", "Use the live store's versions", step_images, with_job=True),
            Step("network", "Create the network and volumes", network_and_volumes),
            Step("data_services", "Start the database and cache", data_services_start),
            Step("copy_database", "Copy the live database", step_copy_database, with_job=True),
            Step("copy_files", "Copy the live files", step_copy_files, with_job=True),
            Step("app", "Start the web server", app_start),
            Step("urls", "Give the copy its own address", step_urls),
            Step("proxy", "Route the staging name through nginx, behind a password", vhost_proxy),
            Step("tls", "Get a TLS certificate", tls_certificate),
        ),
        store_statuses=frozenset({S.QUEUED, S.FAILED}),  # failed: staff's Retry (staging_create_retry)
        store_status_on_start=S.PROVISIONING,
        store_status_on_success=S.ACTIVE,
        fails_store=True,
        timeout_seconds=COPY_TIMEOUT,
        **HOOKS,
    ),
    JobKind(
        name=REFRESH,
        title="Refresh staging from live",
        steps=(
            Step(STOP_STEP, "Stop the staging copy's web server", app_stop),
            Step("copy_database", "Copy the live database", step_copy_database, with_job=True),
            Step("copy_files", "Copy the live files", step_copy_files, with_job=True),
            Step("app", "Start the web server", app_start),
            Step("urls", "Give the copy its own address", step_urls),
        ),
        store_statuses=frozenset({S.ACTIVE}),
        timeout_seconds=COPY_TIMEOUT,
        **HOOKS,
    ),
    JobKind(
        name=PUSH,
        title="Push staging to live",
        steps=(
            Step("check", "Check the staging copy", step_check, with_job=True),
            Step(PRE_BACKUP_STEP, "Back up the live store before the push", step_pre_backup, with_job=True),
            Step(MAINTENANCE_STEP, "Show the maintenance page", vhost_maintenance),
            Step(STOP_STEP, "Stop the live web server", app_stop),
            Step("push_database", "Push the database", step_push_database, with_job=True),
            Step("push_files", "Push the files", step_push_files, with_job=True),
            Step("app", "Start the web server", app_start),
            Step("urls", "Give the live store its own addresses again", step_urls),
            Step("route", "Route the domain to the store again", vhost_proxy),
        ),
        undo=Step(PUT_BACK_STEP, "Put the live store back as it was", step_put_back, with_job=True),
        store_statuses=frozenset({S.ACTIVE}),
        timeout_seconds=lambda: 3 * settings.RESTIC_TIMEOUT + 3 * settings.STORE_WEB_READY_TIMEOUT + 600,
        **HOOKS,
    ),
    JobKind(
        name=UNDO,
        title="Undo a push from staging",
        steps=(
            Step(MAINTENANCE_STEP, "Show the maintenance page", vhost_maintenance),
            Step(STOP_STEP, "Stop the live web server", app_stop),
            Step("put_back", "Put back the backup taken before the push", step_undo_restore, with_job=True),
            Step("app", "Start the web server", app_start),
            Step("route", "Route the domain to the store again", vhost_proxy),
        ),
        store_statuses=frozenset({S.ACTIVE}),
        timeout_seconds=COPY_TIMEOUT,
        **HOOKS,
    ),
)
