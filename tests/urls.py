"""The project's URLs plus two views that exist only for tests.

Sign-up (billing issue) and backup operations (backups issue) have no views yet; their rate limits are
exercised here through the same `rate_limited` decorator those views will use.
"""

from django.http import HttpResponse
from django.urls import path

from shophosting.ratelimits import rate_limited
from shophosting.urls import urlpatterns as project_urlpatterns


@rate_limited("signup")
def signup_probe(request):
    return HttpResponse("signed up")


@rate_limited("backup")
def backup_probe(request):
    return HttpResponse("backup queued")


urlpatterns = [
    path("test-only/signup/", signup_probe),
    path("test-only/backup/", backup_probe),
    *project_urlpatterns,
]
