from django.urls import path

from accounts import views

app_name = "accounts"

# The home page (name "home", at "") is shophosting/portal.py, joined in shophosting/urls.py: it shows stores,
# backups and billing, which accounts must not import.

urlpatterns = [
    path("login/", views.CustomerLoginView.as_view(), name="login"),
    path("logout/", views.CustomerLogoutView.as_view(), name="logout"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/sent/", views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("password/reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("password/reset/done/", views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("password/change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("email/change/", views.email_change_view, name="email_change"),
    path("email/change/confirm/<str:token>/", views.email_change_confirm_view, name="email_change_confirm"),
    path("two-factor/", views.two_factor_view, name="two_factor"),
    path("two-factor/code/", views.second_factor_view, name="second_factor"),
]
