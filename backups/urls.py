from django.urls import path

from backups import transfer_views, views

app_name = "backups"

urlpatterns = [
    path("", views.backup_list_view, name="list"),
    path("create/", views.backup_create_view, name="create"),
    path("<str:snapshot_id>/restore/", views.restore_view, name="restore"),
    path("restores/<int:restore_id>/", views.restore_progress_view, name="restore_progress"),
    path("exports/<int:export_id>/download/", views.restore_export_download_view, name="export_download"),
    # Taking the store's data away and bringing a store in (backups/transfer_views.py).
    path("<str:snapshot_id>/download/", transfer_views.download_request_view, name="download_request"),
    path("downloads/", transfer_views.download_list_view, name="downloads"),
    path("<str:snapshot_id>/files/", transfer_views.snapshot_files_view, name="files"),
    path("<str:snapshot_id>/files/restore/", transfer_views.file_restore_view, name="file_restore"),
    path("import/", transfer_views.import_view, name="import"),
    path("import/uploads/", transfer_views.upload_start_view, name="upload_start"),
    path("import/uploads/<int:upload_id>/", transfer_views.upload_chunk_view, name="upload_chunk"),
    path("import/start/", transfer_views.import_start_view, name="import_start"),
]
