"""The signed download link: no store id and no session, the signature is its authority (transfer_views)."""

from django.urls import path

from backups import transfer_views

app_name = "backup_downloads"

urlpatterns = [
    path("<str:token>/", transfer_views.download_file_view, name="file"),
]
