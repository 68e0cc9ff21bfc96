from django.urls import path

from backups import views

app_name = "backups"

urlpatterns = [
    path("", views.backup_list_view, name="list"),
    path("create/", views.backup_create_view, name="create"),
    path("<str:snapshot_id>/restore/", views.restore_view, name="restore"),
    path("restores/<int:restore_id>/", views.restore_progress_view, name="restore_progress"),
    path("exports/<int:export_id>/download/", views.restore_export_download_view, name="export_download"),
]
