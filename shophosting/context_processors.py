from django.conf import settings


def site(request):
    return {
        "SITE_NAME": "ShopHosting",
        "ADMIN_URL": f"/{settings.ADMIN_URL}",
        "WAGTAIL_ADMIN_URL": f"/{settings.WAGTAIL_ADMIN_URL}",
    }
