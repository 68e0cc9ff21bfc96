from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.CustomerLoginView.as_view(), name="login"),
    path("logout/", views.CustomerLogoutView.as_view(), name="logout"),
    path("", views.account_home_view, name="home"),
]
