from django.urls import path

from consultations import views

app_name = "consultations"

urlpatterns = [
    path("contact/", views.contact_view, name="contact"),
    path("consultation/", views.consultation_view, name="consultation"),
]
