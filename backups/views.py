"""The customer's backups page for one store: list, create and restore (in two steps: what the restore would
take away, then the confirmation), and the download of what changed since a backup. A backup or restore
is a job of the store, followed on the store's job page (stores.views.store_job_view) like any other.
Every view checks that the store is the signed-in customer's; a foreign or forged id is a 404."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.services import audit_record
from backups import selectors
from backups.models import BackupRun, RestoreExport, RestoreRun
from backups.services.backup import backup_enqueue
from backups.services.records import BackupConflict, RepositoryUnavailable, SnapshotNotFound
from backups.services.restore import restore_request
from backups.services.restore_export import ExportNotReady, export_path, restore_export_request
from backups.services.retention import retention_days
from shophosting.core.ratelimits import rate_limited
from stores.models import Store
from stores.selectors import store_of_customer_or_404

BACKUP_STATUSES = (Store.Status.ACTIVE, Store.Status.SUSPENDED)


def _own_store(request, store_id: int) -> Store:
    return store_of_customer_or_404(request.user, store_id)


def _own_snapshot(store: Store, snapshot_id: str) -> BackupRun:
    """The store's kept snapshot `snapshot_id`, from the records; anything else is a 404. The restore itself
    (restore_request) checks the snapshot's tags with restic once more."""
    run = selectors.store_snapshot(store, snapshot_id)
    if run is None:
        raise Http404
    return run


# Page views read the database only; the limits keep a client from turning them into load all the same.
@login_required
@rate_limited("backup_pages", methods=("GET",))
def backup_list_view(request, store_id: int):
    store = _own_store(request, store_id)
    return render(
        request,
        "backups/backup_list.html",
        {
            "store": store,
            "snapshots": selectors.store_snapshot_list(store),
            "can_back_up": store.status in BACKUP_STATUSES,
            "interval_hours": settings.BACKUP_INTERVAL_HOURS,
            "retention_days": retention_days(store),
            "exports": selectors.restore_exports_downloadable(store),
        },
    )


@require_POST
@login_required
@rate_limited("backup")
def backup_create_view(request, store_id: int):
    store = _own_store(request, store_id)
    if store.status not in BACKUP_STATUSES:
        messages.error(request, "This store cannot be backed up until it is set up.")
        return redirect("backups:list", store.pk)
    try:
        run = backup_enqueue(store_id=store.pk, kind=BackupRun.Kind.MANUAL, actor=request.user)
    except BackupConflict as exc:
        messages.error(request, str(exc))
        return redirect("backups:list", store.pk)
    audit_record(event="backup_requested", request=request, store_id=store.pk)
    messages.success(request, "Backup started. It appears in the list of backups when it is done.")
    return redirect("stores:job", store.pk, run.job_id)


@login_required
@rate_limited("backup")
@rate_limited("backup_pages", methods=("GET",))
def restore_view(request, store_id: int, snapshot_id: str):
    """Two steps. GET: the snapshot's date, the three choices and, for a restore of the database, what changed
    since the backup (once found). POST `prepare`: find it (a job). POST `confirm`: start the restore; one
    of the database needs the summary the merchant was shown (its export id)."""
    store = _own_store(request, store_id)
    run = _own_snapshot(store, snapshot_id)
    scope = request.POST.get("scope") or request.GET.get("scope") or RestoreRun.Scope.ALL
    if scope not in RestoreRun.Scope.values:
        scope = RestoreRun.Scope.ALL
    if request.method == "POST" and "prepare" in request.POST:
        try:
            export = restore_export_request(store_id=store.pk, snapshot_id=run.snapshot_id, actor=request.user)
        except BackupConflict as exc:
            messages.error(request, str(exc))
        else:
            audit_record(event="restore_export_requested", request=request, store_id=store.pk, export_id=export.pk)
        return redirect(f"{request.path}?scope={scope}")
    if request.method == "POST":
        export_id = request.POST.get("export") or ""
        needs_export = scope != RestoreRun.Scope.FILES
        if request.POST.get("confirm") != run.snapshot_id[:8]:
            messages.error(request, "Type the first 8 characters of the snapshot id to confirm the restore.")
        elif needs_export and not export_id.isdigit():
            messages.error(request, "Look at what changed since this backup first, then confirm the restore.")
        else:
            try:
                restore = restore_request(
                    store_id=store.pk,
                    snapshot_id=run.snapshot_id,
                    scope=scope,
                    actor=request.user,
                    export_id=int(export_id) if needs_export else None,
                )
            except (BackupConflict, RepositoryUnavailable, ExportNotReady) as exc:
                messages.error(request, str(exc))
            except SnapshotNotFound:
                # Forgotten by retention since the page was drawn; the hourly reconcile marks its row.
                messages.error(request, "This backup is no longer in the backup storage. Choose a newer one.")
            else:
                audit_record(event="restore_requested", request=request, store_id=store.pk, scope=scope)
                return redirect("stores:job", store.pk, restore.job_id)
    export = selectors.restore_export_latest(store, run.snapshot_id)
    return render(
        request,
        "backups/restore_confirm.html",
        {"store": store, "run": run, "scope": scope, "scopes": RestoreRun.Scope.choices, "export": export},
    )


@login_required
@rate_limited("backup_pages", methods=("GET",))
def restore_export_download_view(request, store_id: int, export_id: int):
    """The rows a restore replaced (or would), as a zip: the store's owner only, audited, for the retention."""
    store = _own_store(request, store_id)
    export = get_object_or_404(RestoreExport, pk=export_id, store=store)
    path = export_path(export) if export.downloadable else None
    if path is None or not path.exists():
        raise Http404
    audit_record(event="restore_export_downloaded", request=request, store_id=store.pk, export_id=export.pk)
    name = f"{store.domain}-changes-since-{export.changed_after:%Y-%m-%d-%H%M}.zip"
    response = FileResponse(open(path, "rb"), as_attachment=True, filename=name)  # noqa: SIM115 - FileResponse closes it
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@rate_limited("backup_pages", methods=("GET",))
def restore_progress_view(request, store_id: int, restore_id: int):
    """Where restores were followed before they were jobs: links to it lead to the restore's job page."""
    store = _own_store(request, store_id)
    run = get_object_or_404(RestoreRun, pk=restore_id, store=store, job__isnull=False)
    return redirect("stores:job", store.pk, run.job_id)
