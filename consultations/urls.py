from django.urls import path

from consultations import views

app_name = "consultations"

urlpatterns = [
    # /contact/ is the CMS's ContactPage (cms/models.py), with this booking form on it too.
    path("consultation/", views.consultation_view, name="consultation"),
    path("support/", views.ticket_list_view, name="tickets"),
    path("support/new/", views.ticket_create_view, name="ticket_new"),
    path("support/<str:number>/", views.ticket_detail_view, name="ticket"),
    path("support/attachments/<int:attachment_id>/", views.attachment_download_view, name="attachment"),
]
