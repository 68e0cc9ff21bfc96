from django.contrib import admin
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path

from provisioning.models import JobLogLine, JobStep, ProvisioningJob
from provisioning.selectors import job_progress


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
    list_display = ["id", "store", "kind", "status", "created_at", "started_at", "finished_at"]
    list_filter = ["status", "kind"]
    search_fields = ["store__domain", "rq_job_id"]
    list_select_related = ["store"]
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

    def has_add_permission(self, request):
        return False

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
                "progress": job_progress(job),
            }
        )
