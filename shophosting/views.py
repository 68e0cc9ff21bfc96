"""Error handlers: friendly pages for the status codes a visitor can meet."""

from django.shortcuts import render


def bad_request(request, exception=None):
    return render(request, "400.html", status=400)


def permission_denied(request, exception=None):
    return render(request, "403.html", status=403)


def page_not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    return render(request, "500.html", status=500)


def csrf_failure(request, reason=""):
    return render(
        request,
        "403.html",
        {"reason": "Your form expired or was sent from another site. Reload the page and try again."},
        status=403,
    )
