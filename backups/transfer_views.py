"""The merchant's pages for taking a store's data away (a backup prepared as a download, served through signed
links), bringing a store in (chunked uploads, then an import job), and putting back one file or folder from a
snapshot's listing. Thin: each view parses its input and
calls one service. Every store page checks that the store is the signed-in customer's (a foreign id is a 404);
the signed file link is the one view that needs no session: the signature is its authority."""

from pathlib import PurePosixPath
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.services import audit_record
from backups import transfer_selectors
from backups.models import ImportUpload
from backups.selectors import store_snapshot
from backups.services.download import DownloadLinkExpired, DownloadLinkInvalid, download_open, download_request
from backups.services.file_restore import file_restore_request, snapshot_folder
from backups.services.records import BackupConflict, SnapshotNotFound
from backups.services.store_import import (
    UploadOffsetMismatch,
    UploadRefused,
    import_request,
    upload_append,
    upload_start,
)
from shophosting.core.ratelimits import rate_limited
from stores.selectors import store_of_customer_or_404


@require_POST
@login_required
@rate_limited("backup")
def download_request_view(request, store_id: int, snapshot_id: str):
    store = store_of_customer_or_404(request.user, store_id)
    try:
        download = download_request(store_id=store.pk, snapshot_id=snapshot_id, actor=request.user)
    except SnapshotNotFound:
        raise Http404 from None
    except BackupConflict as exc:
        messages.error(request, str(exc))
        return redirect("backups:list", store.pk)
    audit_record(event="backup_download_requested", request=request, store_id=store.pk, download_id=download.pk)
    messages.success(request, "Your download is being prepared. It appears under Downloads when it is ready.")
    return redirect("stores:job", store.pk, download.job_id)


@require_GET
@login_required
@rate_limited("backup_pages", methods=("GET",))
def download_list_view(request, store_id: int):
    store = store_of_customer_or_404(request.user, store_id)
    return render(
        request,
        "backups/download_list.html",
        {
            "store": store,
            "downloads": transfer_selectors.store_download_list(store),
            "link_minutes": settings.BACKUP_DOWNLOAD_LINK_MINUTES,
            "keep_hours": settings.BACKUP_DOWNLOAD_KEEP_HOURS,
        },
    )


@require_GET
@rate_limited("backup_pages", methods=("GET",))
def download_file_view(request, token: str):
    """One prepared archive, for anyone holding a link signed in the last BACKUP_DOWNLOAD_LINK_MINUTES."""
    try:
        found = download_open(token=token)
    except (DownloadLinkInvalid, DownloadLinkExpired) as exc:
        expired = isinstance(exc, DownloadLinkExpired)
        audit_record(event="backup_download_refused", request=request, reason="expired" if expired else "invalid")
        return render(request, "backups/download_refused.html", {"reason": str(exc)}, status=410 if expired else 403)
    audit_record(
        event="backup_download_served",
        request=request,
        store_id=found.download.store_id,
        download_id=found.download.pk,
        part=found.part,
    )
    return FileResponse(open(found.path, "rb"), as_attachment=True, filename=found.filename)  # noqa: SIM115


@require_GET
@login_required
@rate_limited("backup_pages", methods=("GET",))
def import_view(request, store_id: int):
    store = store_of_customer_or_404(request.user, store_id)
    return render(
        request,
        "backups/import.html",
        {
            "store": store,
            "imports": transfer_selectors.store_import_list(store),
            "allowance_bytes": store.plan.disk_allowance_gb * 1024**3,
            "chunk_bytes": settings.BACKUP_IMPORT_CHUNK_BYTES,
            "parts": ImportUpload.Part,
        },
    )


@require_POST
@login_required
@rate_limited("import_upload")
def upload_start_view(request, store_id: int):
    """Announce one file: `part`, `filename`, `size`. Answers its id, where to send the chunks, and their size."""
    store = store_of_customer_or_404(request.user, store_id)
    try:
        size = int(request.POST.get("size", ""))
    except ValueError:
        return JsonResponse({"error": "Give the file's size in bytes."}, status=400)
    try:
        upload = upload_start(
            store_id=store.pk,
            part=request.POST.get("part", ""),
            filename=request.POST.get("filename", ""),
            size=size,
            actor=request.user,
        )
    except UploadRefused as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(
        {
            "id": upload.pk,
            "offset": 0,
            "url": reverse("backups:upload_chunk", args=[store.pk, upload.pk]),
            "chunk_bytes": settings.BACKUP_IMPORT_CHUNK_BYTES,
        },
        status=201,
    )


@require_http_methods(["GET", "PUT"])
@login_required
@rate_limited("import_upload", methods=("PUT",))
def upload_chunk_view(request, store_id: int, upload_id: int):
    """GET: how much of the file the server holds (where to resume). PUT `?offset=N`: the next chunk, raw."""
    store = store_of_customer_or_404(request.user, store_id)
    upload = get_object_or_404(ImportUpload, pk=upload_id, store=store, removed_at=None)
    if request.method == "PUT":
        try:
            offset = int(request.GET.get("offset", ""))
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"error": "Give the chunk's offset in bytes."}, status=400)
        try:
            upload = upload_append(upload_id=upload.pk, offset=offset, stream=request, length=length)
        except UploadOffsetMismatch as exc:
            return JsonResponse({"error": str(exc), "offset": exc.expected}, status=409)
        except UploadRefused as exc:
            return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"id": upload.pk, "offset": upload.size_received, "size": upload.size_declared})


@require_POST
@login_required
@rate_limited("backup")
def import_start_view(request, store_id: int):
    store = store_of_customer_or_404(request.user, store_id)
    if request.POST.get("confirm") != store.domain:
        messages.error(request, "Type the store's domain to confirm that its database and files are replaced.")
        return redirect("backups:import", store.pk)
    try:
        store_import = import_request(
            store_id=store.pk,
            database_upload_id=int(request.POST.get("database_upload") or 0),
            files_upload_id=int(request.POST.get("files_upload") or 0),
            actor=request.user,
        )
    except ValueError:
        messages.error(request, "Upload the database dump and the files archive first.")
        return redirect("backups:import", store.pk)
    except (UploadRefused, BackupConflict) as exc:
        messages.error(request, str(exc))
        return redirect("backups:import", store.pk)
    audit_record(event="store_import_requested", request=request, store_id=store.pk, import_id=store_import.pk)
    return redirect("stores:job", store.pk, store_import.job_id)


@require_GET
@login_required
@rate_limited("backup_pages", methods=("GET",))
def snapshot_files_view(request, store_id: int, snapshot_id: str):
    """A folder of a snapshot (`?path=`, as the snapshot lists it; the volumes at the top), from the file list
    recorded with the backup: no restic call."""
    store = store_of_customer_or_404(request.user, store_id)
    run = store_snapshot(store, snapshot_id)
    if run is None:
        raise Http404
    path = request.GET.get("path", "").strip("/")
    entries = snapshot_folder(run, path)
    if entries is None:
        raise Http404
    parts = PurePosixPath(path).parts if path else ()
    return render(
        request,
        "backups/snapshot_files.html",
        {
            "store": store,
            "run": run,
            "path": path,
            "entries": entries,
            "breadcrumbs": [(part, "/".join(parts[: number + 1])) for number, part in enumerate(parts)],
            "has_file_lists": run.file_lists.exists(),
        },
    )


@require_POST
@login_required
@rate_limited("backup")
def file_restore_view(request, store_id: int, snapshot_id: str):
    store = store_of_customer_or_404(request.user, store_id)
    path = request.POST.get("path", "").strip("/")
    try:
        file_restore = file_restore_request(store_id=store.pk, snapshot_id=snapshot_id, path=path, actor=request.user)
    except SnapshotNotFound:
        raise Http404 from None
    except BackupConflict as exc:
        messages.error(request, str(exc))
        return redirect(f"{reverse('backups:files', args=[store.pk, snapshot_id])}?{urlencode({'path': path})}")
    audit_record(event="file_restore_requested", request=request, store_id=store.pk, path=path)
    return redirect("stores:job", store.pk, file_restore.job_id)
