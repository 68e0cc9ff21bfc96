"""The project's URLs plus a view that exists only for tests.

Backup operations (backups issue) have no views yet; their rate limit is exercised here through the same
`rate_limited` decorator those views will use.
"""

from django.http import HttpResponse
from django.urls import path

from shophosting.ratelimits import rate_limited
from shophosting.urls import urlpatterns as project_urlpatterns


@rate_limited("backup")
def backup_probe(request):
    return HttpResponse("backup queued")


urlpatterns = [
    path("test-only/backup/", backup_probe),
    *project_urlpatterns,
]
