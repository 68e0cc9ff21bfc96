from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path

from provisioning.exceptions import JobConflict
from provisioning.models import JobLogLine, JobStep, ProvisioningJob
from provisioning.selectors import job_progress_for_staff
from provisioning.services import job_retry
from stores.exceptions import InvalidTransition


class JobStepInline(admin.TabularInline):
    model = JobStep
    extra = 0
    can_delete = False
    fields = ["order", "title", "status", "started_at", "finished_at", "duration", "log_tail"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="seconds")
    def duration(self, step):
        return f"{step.duration_seconds:.1f}" if step.duration_seconds is not None else "–"

    @admin.display(description="log")
    def log_tail(self, step):
        lines = list(JobLogLine.objects.filter(step=step).order_by("-id").values_list("message", flat=True)[:5])
        return "\n".join(reversed(lines))


@admin.register(ProvisioningJob)
class ProvisioningJobAdmin(admin.ModelAdmin):
    list_display = ["id", "store", "kind", "status", "failed_step", "created_by", "created_at", "duration"]
    list_filter = ["status", "kind", "created_at"]
    search_fields = ["store__domain", "rq_job_id"]
    list_select_related = ["store", "created_by"]
    actions = ["retry"]
    readonly_fields = [
        "store",
        "kind",
        "status",
        "rq_job_id",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "timeout_seconds",
        "error",
    ]
    inlines = [JobStepInline]
    # Adds the live checklist and log tail, polled from progress_view while the job runs.
    change_form_template = "admin/provisioning/provisioningjob/change_form.html"

    def get_queryset(self, request):
        failed = JobStep.objects.filter(job=OuterRef("pk"), status=JobStep.Status.FAILED).values("title")[:1]
        return super().get_queryset(request).annotate(failed_step_title=Subquery(failed))

    @admin.display(description="failed at", ordering="failed_step_title")
    def failed_step(self, job):
        return job.failed_step_title or ""

    @admin.display(description="seconds")
    def duration(self, job):
        if job.started_at and job.finished_at:
            return f"{(job.finished_at - job.started_at).total_seconds():.1f}"
        return "–"

    def has_add_permission(self, request):
        return False

    def has_operate_permission(self, request, obj=None):
        return request.user.has_perm("stores.operate_store")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the job history is the record of what happened to a store
        return actions

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_operate": self.has_operate_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    @admin.action(description="Retry (run the failed jobs again)", permissions=["operate"])
    def retry(self, request, queryset):
        for job in queryset:
            try:
                new = job_retry(job_id=job.pk, actor=request.user)
            except (JobConflict, InvalidTransition) as exc:
                self.message_user(request, f"Job #{job.pk} not retried: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Job #{job.pk} runs again as job #{new.pk}.", messages.SUCCESS)

    def get_urls(self):
        progress = path(
            "<int:job_id>/progress.json",
            self.admin_site.admin_view(self.progress_view),
            name="provisioning_provisioningjob_progress",
        )
        return [progress, *super().get_urls()]

    def progress_view(self, request, job_id: int):
        if not self.has_view_permission(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        job = get_object_or_404(ProvisioningJob.objects.select_related("store"), pk=job_id)
        store = job.store
        return JsonResponse(
            {
                "store": {"status": store.status, "status_display": store.get_status_display(), "message": job.error},
                "progress": job_progress_for_staff(job),
            }
        )
