"""The staff admin's own pages and quick actions. Each checks one permission, calls one service and audits
what it did; the admin site wraps them in admin_view (staff sign-in, CSRF, no caching)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.admin import site
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.services import audit_record
from backups.services.records import BackupConflict
from backups.services.system import system_backup_enqueue
from provisioning.exceptions import JobConflict
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue, job_retry
from shophosting.core import queues
from shophosting.staff import logs, selectors
from stores.exceptions import InvalidTransition
from stores.models import Store
from stores.selectors import store_id_by_reference


def _require(request, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _page(request, template: str, title: str, context: dict):
    return TemplateResponse(request, template, {**site.each_context(request), "title": title, **context})


def system_health_view(request):
    _require(request, "stores.view_host")
    return _page(request, "admin/staff/system_health.html", "System health", {"health": selectors.system_health()})


def logs_view(request):
    _require(request, "accounts.view_auditevent")
    key = request.GET.get("log", "web")
    level = request.GET.get("level", "INFO")
    if level not in logs.LEVELS:
        level = "INFO"
    try:
        path, entries = logs.log_tail(key=key, min_level=level)
    except logs.UnknownLog:
        raise Http404("No such log.") from None
    context = {"logs": list(settings.STAFF_LOG_FILES), "current": key, "levels": logs.LEVELS, "level": level}
    return _page(request, "admin/staff/logs.html", "Logs", {**context, "path": path, "entries": entries})


@require_POST
def system_backup_run_view(request):

    _require(request, "backups.run_system_backup")
    try:
        run = system_backup_enqueue(actor=request.user)
    except BackupConflict as exc:
        messages.error(request, str(exc))
    else:
        audit_record(event="system_backup_requested", request=request, backup_run_id=run.pk)
        messages.success(request, f"System backup #{run.pk} is queued.")
    return redirect("admin:index")


@require_POST
def rq_failed_clear_view(request):

    _require(request, "provisioning.use_rq_dashboard")
    cleared = queues.failed_jobs_clear()
    audit_record(event="rq_failed_jobs_cleared", request=request, cleared=cleared)
    messages.success(request, f"Cleared {cleared} failed RQ job(s).")
    return redirect("admin:index")


@require_POST
def job_retry_view(request, job_id: int):

    _require(request, "stores.operate_store")
    try:
        job = job_retry(job_id=job_id, actor=request.user)
    except ProvisioningJob.DoesNotExist:
        raise Http404("No such job.") from None
    except (JobConflict, InvalidTransition) as exc:
        messages.error(request, f"Job #{job_id} was not retried: {exc}")
        return redirect("admin:provisioning_provisioningjob_change", job_id)
    audit_record(event="job_retried", request=request, job_id=job_id, new_job_id=job.pk, store_id=job.store_id)
    messages.success(request, f"Job #{job_id} runs again as job #{job.pk}.")
    return redirect("admin:provisioning_provisioningjob_change", job.pk)


# The store operations staff start from the dashboard and the store page: each is the provisioning job kind
# of the same name.
STORE_OPERATIONS = ("suspend", "resume", "retry", "restart")


@require_POST
def store_operate_view(request):

    _require(request, "stores.operate_store")
    operation = request.POST.get("operation", "")
    back = request.POST.get("next", "")
    back = back if url_has_allowed_host_and_scheme(back, allowed_hosts=None) and back.startswith("/") else None
    store_id = store_id_by_reference(request.POST.get("store", ""))
    try:
        if store_id is None or operation not in STORE_OPERATIONS:
            raise ValueError(operation)
        job = job_enqueue(store_id=store_id, kind=operation, actor=request.user)
    except (ValueError, Store.DoesNotExist):
        messages.error(
            request, "Name a store (its number or domain) and an operation (suspend, resume, retry or restart)."
        )
        return redirect(back or "admin:index")
    except (JobConflict, InvalidTransition) as exc:
        messages.error(request, f"Not started: {exc}")
        return redirect(back or "admin:index")
    audit_record(event=f"store_{operation}_requested", request=request, store_id=store_id, job_id=job.pk)
    messages.success(request, f"{operation.capitalize()} of {job.store.domain} is queued as job #{job.pk}.")
    return redirect(back or "admin:index")
