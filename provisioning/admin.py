from django.contrib import admin

from provisioning.models import JobLogLine, JobStep, ProvisioningJob


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

    def has_add_permission(self, request):
        return False
