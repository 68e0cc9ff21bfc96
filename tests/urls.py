"""The project's URLs plus a view that exists only for tests.

Backup operations (backups issue) have no views yet; their rate limit is exercised here through the same
`rate_limited` decorator those views will use.
"""

from django.http import HttpResponse
from django.urls import path

from shophosting.core.ratelimits import rate_limited
from shophosting.urls import urlpatterns as project_urlpatterns


@rate_limited("backup")
def backup_probe(request):
    return HttpResponse("backup queued")


@rate_limited("backup_pages", methods=("GET",))
def backup_pages_probe(request):
    return HttpResponse("a backup page")


@rate_limited("import_upload")
def import_upload_probe(request):
    return HttpResponse("chunk stored")


@rate_limited("job_progress", methods=("GET",))
def job_progress_probe(request):
    return HttpResponse("{}")


@rate_limited("domains", key="user")
def domains_probe(request):
    """The store page's domain operations (provisioning/views.py) share this limit, per account."""
    return HttpResponse("domain checked")


urlpatterns = [
    path("test-only/domains/", domains_probe),
    path("test-only/backup/", backup_probe),
    path("test-only/backup-pages/", backup_pages_probe),
    path("test-only/job-progress/", job_progress_probe),
    path("test-only/import-upload/", import_upload_probe),
    *project_urlpatterns,
]
