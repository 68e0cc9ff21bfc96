from django.urls import path

from backups.staging import views

app_name = "staging"

urlpatterns = [
    path("", views.staging_page_view, name="page"),
    path("create/", views.staging_create_view, name="create"),
    path("reveal/", views.staging_reveal_view, name="reveal"),
    path("refresh/", views.staging_refresh_view, name="refresh"),
    path("push/", views.staging_push_view, name="push"),
    path("pushes/<int:run_id>/undo/", views.staging_undo_view, name="undo"),
]
