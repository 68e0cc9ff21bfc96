from django.conf import settings
from django.http import Http404
from django.shortcuts import render

from shophosting.status.selectors import status_page_data


def status_page_view(request):
    """The public status page, when STATUS_PAGE_ENABLED. Rendered per request (the base template carries a CSP
    nonce); the data behind it is cached for STATUS_PAGE_CACHE_SECONDS."""
    if not settings.STATUS_PAGE_ENABLED:
        raise Http404("No status page here.")
    return render(request, "status/page.html", status_page_data())
