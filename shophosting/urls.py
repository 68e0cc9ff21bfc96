from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.admin.views.account import LoginView as WagtailLoginView
from wagtail.contrib.sitemaps.views import sitemap
from wagtail.documents import urls as wagtaildocs_urls

from accounts import urls as accounts_urls
from billing.leaving_views import account_export_view, account_leave_view
from cms.views import robots_txt
from provisioning.views import store_urlpatterns as provisioning_store_urlpatterns
from shophosting import health
from shophosting.core.ratelimits import rate_limited
from shophosting.metrics import metrics_view
from shophosting.portal import account_home_view
from shophosting.staff.rq_dashboard import rq_dashboard_urlpatterns
from shophosting.status.views import status_page_view
from stores import urls as stores_urls

handler400 = "shophosting.views.bad_request"
handler403 = "shophosting.views.permission_denied"
handler404 = "shophosting.views.page_not_found"
handler500 = "shophosting.views.server_error"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Prometheus: allowed addresses or the bearer token only (settings METRICS_*); a 404 for anyone else.
    path("metrics", metrics_view, name="metrics"),
    # Staff sign-in, rate limited; these shadow the admins' own login routes.
    path(f"{settings.ADMIN_URL}login/", rate_limited("staff_login")(admin.site.login), name="staff_login"),
    path(
        f"{settings.WAGTAIL_ADMIN_URL}login/",
        rate_limited("staff_login")(WagtailLoginView.as_view()),
        name="cms_staff_login",
    ),
    path(settings.ADMIN_URL, admin.site.urls),
    # django-rq's dashboard only for roles with provisioning.use_rq_dashboard (its own check is is_staff).
    path("django-rq/", include((rq_dashboard_urlpatterns(), "django_rq"))),
    path(settings.WAGTAIL_ADMIN_URL, include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    # Two namespaces are composed here from a lower app's patterns and pages that need apps above it: the
    # customer's home (shophosting/portal.py), leaving (billing/leaving_views.py) and the store page
    # (provisioning/views.py).
    path(
        "accounts/",
        include(
            (
                [
                    *accounts_urls.urlpatterns,
                    path("", account_home_view, name="home"),
                    path("leave/", account_leave_view, name="leave"),
                    path("leave/export/", account_export_view, name="export"),
                ],
                "accounts",
            )
        ),
    ),
    path("stores/", include(([*stores_urls.urlpatterns, *provisioning_store_urlpatterns], "stores"))),
    path("stores/<int:store_id>/backups/", include("backups.urls")),
    path("backup-downloads/", include("backups.download_urls")),
    path("stores/<int:store_id>/staging/", include("backups.staging.urls")),
    path("", include("billing.urls")),
    path("", include("consultations.urls")),
    # Wagtail serves every remaining path: it must stay last.
    path("status/", status_page_view, name="status_page"),
    path("sitemap.xml", sitemap, name="sitemap"),
    path("robots.txt", robots_txt, name="robots_txt"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admins); it is the site's SVG icon.
    path("favicon.ico", RedirectView.as_view(url=f"{settings.STATIC_URL}favicon.svg", permanent=True)),
    path("", include(wagtail_urls)),
]
