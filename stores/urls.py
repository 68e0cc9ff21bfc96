from django.urls import path

from stores import views

app_name = "stores"

urlpatterns = [
    path("<int:store_id>/", views.store_detail_view, name="detail"),
    path("<int:store_id>/progress.json", views.store_progress_view, name="progress"),
    path("<int:store_id>/jobs/<int:job_id>/", views.store_job_view, name="job"),
    path("<int:store_id>/jobs/<int:job_id>/progress.json", views.store_progress_view, name="job_progress"),
    path("<int:store_id>/credentials/", views.store_credentials_view, name="credentials"),
    path("<int:store_id>/restart/", views.store_restart_view, name="restart"),
]
