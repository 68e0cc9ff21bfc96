"""The `update` job kind: a live store moved to a new web image, its data kept, and put back on the old image
and data when the new version fails its checks. Staff run it through a rollout (provisioning.rollouts).

    precheck → maintenance → pre_backup → recreate → upgrade → check → route
    (any of them fails) → put_back: old image, data from the pre-update backup, start, check, route
    (its worker dies between maintenance and route) → the reaper's undo job runs put_back (undo.py)

- precheck: the front page answers 200 now; its title is what the check afterwards must find (a store that
  is already broken is not updated: nothing could tell the update's fault from the store's).
- maintenance: nginx shows the maintenance page, so no order is written after the backup and lost by a
  put-back. The checks go to the store's published port, past nginx.
- pre_backup: a backup through provisioning.safety (backups registers it), in the merchant's list as
  "Before an update". If it fails, nothing was changed.
- recreate: the role's recorded image becomes the new one (StoreImage); the app's containers stop, the
  role's container is kept aside, stopped (`<name>-previous`), and the app starts from the new image on the
  same named volumes.
- upgrade: the application's own upgrade (the stack's upgrade_commands: WordPress's wp_upgrade(),
  Magento's setup:upgrade --keep-generated).
- check: the front page answers 200 with the same title; the admin login page shows its form.
- route: nginx proxies to the store again; the old container kept aside is removed.
- put_back (the kind's undo step, run by the engine while the job still holds the store): the old image
  recorded again, the new container removed and the old one put back in its place, the data put back from
  the pre-update backup, the app started and checked, nginx routed.

The store stays active throughout; the job fails with the reason, and the merchant's history says what
happened ("Updated to …", or "Update to … failed; your store was put back on …").
"""

import html
import http.client
import re

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from provisioning import docker_client, safety
from provisioning.exceptions import ProvisioningError
from provisioning.kinds import JobKind, Log, Step
from provisioning.models import JobStep, ProvisioningJob, StoreUpdate, UpdateEvent, UpdateStatus, image_version
from provisioning.services import job_enqueue
from provisioning.stacks import stack_for
from provisioning.steps import app_start, app_stop, vhost_maintenance, vhost_proxy
from provisioning.store_images import store_image_set
from shophosting.core.transitions import transition
from stores.exceptions import InvalidTransition
from stores.models import Store
from stores.services import store_event_record

KIND = ProvisioningJob.Kind.UPDATE
ROLE = "web"  # the application: the image an update changes
U = UpdateStatus
UPDATE_ALLOWED_FROM: dict[str, set[str]] = {
    U.RUNNING: {U.QUEUED},
    U.UPDATED: {U.RUNNING},
    U.ROLLED_BACK: {U.QUEUED, U.RUNNING, U.FAILED},  # from failed: put back by an undo job after a reap
    U.FAILED: {U.QUEUED, U.RUNNING},
}
ROUTE_STEP = "route"
MAINTENANCE_STEP = "maintenance"
RECREATE_STEP = "recreate"  # from this step on, the store was changed and a failure puts it back
PUT_BACK_STEP = "put_back"
TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class AlreadyOnImage(InvalidTransition):
    """The store already runs the image it would be updated to: refused like any update the store is in no
    state for (a retry of a failed update finds it so when the reaper stopped it after its recreate)."""


def _update_of(job_id: int) -> StoreUpdate:
    return StoreUpdate.objects.get(job_id=job_id)


def update_transition(update_id: int, to: str, *, note: str = "", **fields) -> StoreUpdate:
    """The one writer of StoreUpdate.status: the shared transition, along UPDATE_ALLOWED_FROM."""
    return transition(
        StoreUpdate,
        update_id,
        to,
        allowed_from=UPDATE_ALLOWED_FROM,
        event_model=UpdateEvent,
        event_link="store_update",
        note=note[:5000],
        **fields,
    )


# --- Reading the store's pages ----------------------------------------------------------------------------


def _page(store: Store, path: str) -> tuple[int, str]:
    """GET `path` on the store's published port with its domain as Host (past nginx, which may show the
    maintenance page), never following redirects; (status, body)."""
    connection = http.client.HTTPConnection(store.host.bind_address, store.port, timeout=15)
    try:
        connection.request("GET", path, headers={"Host": store.domain, "Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read(2_000_000).decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        raise ProvisioningError(f"{path} did not answer: {exc}") from exc
    finally:
        connection.close()


def _title(body: str) -> str:
    found = TITLE.search(body)
    return " ".join(html.unescape(found.group(1)).split()) if found else ""


def _checks(store: Store, log: Log, *, title: str) -> None:
    """The front page answers 200 with `title`, and the admin login page shows its login form."""
    stack = stack_for(store)
    problems = []
    status, body = _page(store, "/")
    if status != 200:
        problems.append(f"the front page answers HTTP {status}")
    elif _title(body) != title:
        problems.append(f"the front page's title is “{_title(body)}”, not “{title}”")
    status, body = _page(store, stack.admin_login_path)
    if status != 200 or stack.admin_login_marker not in body:
        problems.append(f"the admin login page {stack.admin_login_path} answers HTTP {status} without its login form")
    if problems:
        raise ProvisioningError("; ".join(problems))
    log(f"front page answers 200 with “{title}”; the admin login page {stack.admin_login_path} shows its form")


# --- Changing the image -----------------------------------------------------------------------------------


def _previous(store: Store) -> str:
    """The name the role's old container is kept under, stopped, until the update succeeded."""
    return f"{stack_for(store).container_name(ROLE)}-previous"


def _app_replace(store: Store, log: Log, *, image: str) -> None:
    """Record the new `image` for the role, stop the app, and keep the role's old container aside (stopped,
    renamed `<name>-previous`, with whatever its own layer holds) if it runs another image: the next start
    creates the container from `image`, on the same named volumes. Repeated, it finds its work done."""
    store_image_set(store_id=store.pk, role=ROLE, image=image)
    log(f"{ROLE}: the store runs {image} from now on")
    app_stop(store, log)
    name, base_url = stack_for(store).container_name(ROLE), store.host.engine
    current = docker_client.container_image(name=name, base_url=base_url)
    if current not in (None, image):
        docker_client.container_remove(name=_previous(store), base_url=base_url)  # one an earlier update left
        docker_client.container_rename(name=name, new_name=_previous(store), base_url=base_url)
        log(f"{ROLE}: {name} ({current}) kept aside, stopped, as {_previous(store)}; the volumes stay")


def _app_put_back(store: Store, log: Log, *, image: str) -> None:
    """The role's old container back in its place (the one kept aside, else a new one from `image`)."""
    store_image_set(store_id=store.pk, role=ROLE, image=image)
    log(f"{ROLE}: the store runs {image} again")
    app_stop(store, log)
    name, base_url = stack_for(store).container_name(ROLE), store.host.engine
    if docker_client.container_image(name=name, base_url=base_url) not in (None, image):
        docker_client.container_remove(name=name, base_url=base_url)
        log(f"{ROLE}: the new version's {name} removed")
    if docker_client.container_image(name=_previous(store), base_url=base_url) == image:
        docker_client.container_rename(name=_previous(store), new_name=name, base_url=base_url)
        log(f"{ROLE}: the old container is back as {name}")


# --- The steps --------------------------------------------------------------------------------------------


def step_precheck(store: Store, log: Log, *, job_id: int) -> None:
    update = _update_of(job_id)
    web = stack_for(store).container_name(ROLE)
    state, _ = docker_client.container_state(name=web, base_url=store.host.engine)
    if state != "running":
        raise ProvisioningError(f"{web} is {state} before the update; nothing was changed")
    status, body = _page(store, "/")
    if status != 200:
        raise ProvisioningError(f"the store answers HTTP {status} before the update; nothing was changed")
    title = _title(body)
    StoreUpdate.objects.filter(pk=update.pk).update(title_before=title)
    log(f"front page answers 200 with “{title}”; updating {image_version(update.from_image)} → {update.to_image}")


def step_maintenance(store: Store, log: Log, *, job_id: int) -> None:
    vhost_maintenance(store, log)


def step_pre_backup(store: Store, log: Log, *, job_id: int) -> None:
    update = _update_of(job_id)
    reference = safety.snapshot_take(
        store_id=store.pk, job_id=job_id, reason=f"before the update to {update.to_image}", log=log
    )
    StoreUpdate.objects.filter(pk=update.pk).update(backup_reference=reference)


def step_recreate(store: Store, log: Log, *, job_id: int) -> None:
    _app_replace(store, log, image=_update_of(job_id).to_image)
    app_start(store, log, accept_server_errors=True)  # the checks judge the answer


def step_upgrade(store: Store, log: Log, *, job_id: int) -> None:
    stack = stack_for(store)
    for command, environment in stack.upgrade_commands():
        code, output = docker_client.container_exec(
            name=stack.container_name("web"), command=command, environment=environment, base_url=store.host.engine
        )
        for line in output.strip().splitlines()[-20:]:
            log(line)
        if code != 0:
            raise ProvisioningError(f"the application's upgrade failed (exit {code}): {output.strip()[-500:]}")


def step_check(store: Store, log: Log, *, job_id: int) -> None:
    _checks(store, log, title=_update_of(job_id).title_before)


def step_route(store: Store, log: Log, *, job_id: int) -> None:
    vhost_proxy(store, log)
    if docker_client.container_remove(name=_previous(store), base_url=store.host.engine):
        log(f"{_previous(store)}, the old version's container, removed")


def step_put_back(store: Store, log: Log, *, job_id: int) -> None:
    """After a failed step: the old image and the data as they were before the update (from the pre-update
    backup, so whatever the new version's upgrade wrote is gone), started, checked and routed again."""
    update = _update_of(job_id)
    if not _step_started(job_id, RECREATE_STEP):
        log("the store's containers and data were not changed")
    else:
        _app_put_back(store, log, image=update.from_image)
        safety.snapshot_restore(store_id=store.pk, reference=update.backup_reference, log=log)
        app_start(store, log, accept_server_errors=False)
        _checks(store, log, title=update.title_before)
        log(f"the store runs {update.from_image} again, with its data as before the update")
    if _step_started(job_id, MAINTENANCE_STEP):
        vhost_proxy(store, log)


def _step_started(job_id: int, name: str) -> bool:
    """Whether the update got as far as that step (from `recreate` on, the store's containers were changed;
    from `maintenance` on, nginx shows the maintenance page)."""
    return (
        JobStep.objects.filter(job_id=job_id, name=name)
        .exclude(status__in=[JobStep.Status.PENDING, JobStep.Status.SKIPPED])
        .exists()
    )


# --- The kind's hooks (inside the engine's transaction that moves the job) --------------------------------


def on_start(job_id: int) -> None:
    update_transition(_update_of(job_id).pk, U.RUNNING)


def on_success(job_id: int) -> None:
    update = update_transition(_update_of(job_id).pk, U.UPDATED, finished_at=timezone.now())
    store_event_record(
        store_id=update.store_id,
        note=f"job #{job_id}: {ROLE} updated from {update.from_image} to {update.to_image}",
        message=f"Updated to {image_version(update.to_image)}.",
    )
    _rollout_told(update)


def on_failure(job_id: int, summary: str) -> None:
    update = _update_of(job_id)
    if update.status not in (U.QUEUED, U.RUNNING):
        return
    new, old = image_version(update.to_image), image_version(update.from_image)
    put_back = JobStep.objects.filter(job_id=job_id, name=PUT_BACK_STEP, status=JobStep.Status.SUCCEEDED).exists()
    if not _step_started(job_id, RECREATE_STEP):
        status, message = U.FAILED, f"Update to {new} did not start; your store stays on {old}."
    elif put_back:
        status, message = U.ROLLED_BACK, f"Update to {new} failed; your store was put back on {old}."
    else:
        status = U.FAILED
        message = f"Update to {new} failed, and your store could not be put back on {old} yet; our team is on it."
    update = update_transition(update.pk, status, note=summary, error=summary[:10000], finished_at=timezone.now())
    store_event_record(store_id=update.store_id, note=f"job #{job_id}: {summary}", message=message)
    _rollout_told(update)


def undo_after_reap(job_id: int) -> bool:
    """A reaped update is put back by an undo job (provisioning/undo.py) when it failed with nothing put back
    yet, after it put up the maintenance page and before its `route` step began: in between, no order can be
    written that the put-back's restore would drop. Reaped in its precheck, it changed nothing; from `route`
    on, the new version may be taking orders: staff decide."""
    return (
        _update_of(job_id).status == U.FAILED
        and _step_started(job_id, MAINTENANCE_STEP)
        and not _step_started(job_id, ROUTE_STEP)
    )


def on_undone(job_id: int) -> None:
    """The undo job put the reaped update back: rolled back if it had changed the store (the merchant reads
    so), or, stopped before that, the store is open again and the update stays failed (it did not start)."""
    update = _update_of(job_id)
    new, old = image_version(update.to_image), image_version(update.from_image)
    if not _step_started(job_id, RECREATE_STEP):
        store_event_record(
            store_id=update.store_id,
            note=f"job #{job_id}'s update to {update.to_image} stopped before it changed the store; routed again",
            message=f"Update to {new} was interrupted before it changed your store; your store is open again.",
        )
        return
    if update.status == U.FAILED:
        update = update_transition(update.pk, U.ROLLED_BACK, note="put back by an undo job after its worker stopped")
        from provisioning import rollouts  # rollouts requests updates: imported when an update ends

        rollouts.rollout_update_put_back(update_id=update.pk)
    store_event_record(
        store_id=update.store_id,
        note=f"job #{job_id}'s update to {update.to_image} was put back after its worker stopped",
        message=f"Update to {new} was interrupted; your store was put back on {old}.",
    )


def _rollout_told(update: StoreUpdate) -> None:
    from provisioning import rollouts  # rollouts requests updates: imported when an update ends

    rollouts.rollout_update_ended(update_id=update.pk)


def retry(job_id: int, actor: User | None) -> ProvisioningJob:
    """A failed update again, as a new update to the same image from the store's image now."""
    update = _update_of(job_id)
    return store_update_request(store_id=update.store_id, image=update.to_image, actor=actor).job


# --- Requests ---------------------------------------------------------------------------------------------


@transaction.atomic
def store_update_request(*, store_id: int, image: str, actor: User | None = None) -> StoreUpdate:
    """Queue an update of a live store to `image`. Refused (JobConflict, InvalidTransition) while another
    operation runs or the store is not active; AlreadyOnImage if it runs `image` already."""
    job = job_enqueue(store_id=store_id, kind=KIND, actor=actor)  # locks the store: its image cannot change now
    store = Store.objects.get(pk=store_id)
    current = stack_for(store).image(ROLE)
    if current == image:
        raise AlreadyOnImage(f"{store.domain} already runs {image}")
    update = StoreUpdate.objects.create(
        store=store, job=job, role=ROLE, from_image=current, to_image=image, created_by=actor
    )
    UpdateEvent.objects.create(store_update=update, new_status=update.status, actor=actor, note=f"update to {image}")
    return update


KINDS = (
    JobKind(
        name=KIND,
        title="Update",
        steps=(
            Step("precheck", "Check the store before the update", step_precheck, with_job=True),
            Step(MAINTENANCE_STEP, "Show the maintenance page", step_maintenance, with_job=True),
            Step("pre_backup", "Back up the store before the update", step_pre_backup, with_job=True),
            Step(RECREATE_STEP, "Start the new version", step_recreate, with_job=True),
            Step("upgrade", "Upgrade the store's database", step_upgrade, with_job=True),
            Step("check", "Check the store answers", step_check, with_job=True),
            Step(ROUTE_STEP, "Route the domain to the store again", step_route, with_job=True),
        ),
        undo=Step(PUT_BACK_STEP, "Put the store back on its old version", step_put_back, with_job=True),
        store_statuses=frozenset({Store.Status.ACTIVE}),
        # A backup, a put-back (a restore) and two starts, with room for each.
        timeout_seconds=lambda: 3 * settings.RESTIC_TIMEOUT + 3 * settings.STORE_WEB_READY_TIMEOUT + 600,
        on_start=on_start,
        on_success=on_success,
        on_failure=on_failure,
        retry=retry,
        undo_after_reap=undo_after_reap,
        on_undone=on_undone,
    ),
)
