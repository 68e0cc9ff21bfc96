"""django-rq's dashboard behind our roles: its views only check is_staff, and support staff may not
requeue or delete jobs. Each view is wrapped to need provisioning.use_rq_dashboard."""

from functools import wraps

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.urls import URLPattern
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

from shophosting.staff.selectors import dashboard_live_changed
from shophosting.staff.site import SAFE_METHODS


def _rq_permission_required(view):
    @wraps(view)
    @staff_member_required
    def guarded(request, *args, **kwargs):
        if not request.user.has_perm("provisioning.use_rq_dashboard"):
            raise PermissionDenied
        try:
            return view(request, *args, **kwargs)
        finally:  # a job requeued or deleted (even if the view failed after): the index's queue figures moved
            if request.method not in SAFE_METHODS:
                dashboard_live_changed()

    return guarded


def rq_dashboard_urlpatterns():
    # django-rq leaves its stats.json and metrics endpoints unwrapped (they also take an API token, which we do
    # not issue); they get the same guard as the rest, and the dashboard's own pages link to them.
    api = [
        URLPattern(pattern.pattern, _rq_permission_required(pattern.callback), pattern.default_args, pattern.name)
        for pattern in get_api_urlpatterns()
    ]
    return api + get_admin_urlpatterns(view_wrapper=_rq_permission_required)
