from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("signup/<slug:plan_slug>/", views.signup_view, name="signup"),
    path("billing/", views.billing_view, name="page"),
    path("billing/portal/", views.billing_portal_view, name="portal"),
    path("billing/checkout/success/", views.checkout_success_view, name="checkout_success"),
    path("billing/checkout/cancel/", views.checkout_cancel_view, name="checkout_cancel"),
    path("billing/checkout/<int:subscription_id>/", views.checkout_resume_view, name="checkout_resume"),
    path("billing/subscriptions/<int:subscription_id>/stores/add/", views.store_add_view, name="store_add"),
]
