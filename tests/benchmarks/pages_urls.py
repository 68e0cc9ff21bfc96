"""The project's URLs and the floor the benchmark compares them with: a view that does nothing."""

from django.http import HttpResponse
from django.urls import path

from shophosting.urls import urlpatterns as project_urlpatterns


def bare(request):
    return HttpResponse("ok")


urlpatterns = [path("bench/bare/", bare), *project_urlpatterns]
