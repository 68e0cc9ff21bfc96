from django.urls import path

from stores import views

app_name = "stores"

# The store page, its progress and restart are provisioning.views.store_urlpatterns, joined in shophosting/urls.py.

urlpatterns = [
    path("<int:store_id>/credentials/", views.store_credentials_view, name="credentials"),
]
