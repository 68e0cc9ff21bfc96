from django.urls import path

from consultations import views

app_name = "consultations"

urlpatterns = [
    path("contact/", views.contact_view, name="contact"),
    path("consultation/", views.consultation_view, name="consultation"),
    path("support/", views.ticket_list_view, name="tickets"),
    path("support/new/", views.ticket_create_view, name="ticket_new"),
    path("support/<str:number>/", views.ticket_detail_view, name="ticket"),
    path("support/attachments/<int:attachment_id>/", views.attachment_download_view, name="attachment"),
]
