from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.decorators import method_decorator

from accounts.forms import LoginForm
from billing.selectors import subscriptions_with_room
from shophosting.ratelimits import rate_limited
from stores.selectors import store_list_for_customer


@method_decorator(rate_limited("customer_login"), name="dispatch")
class CustomerLoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class CustomerLogoutView(auth_views.LogoutView):
    pass


@login_required
def account_home_view(request):
    return render(
        request,
        "accounts/home.html",
        {"stores": store_list_for_customer(request.user), "with_room": subscriptions_with_room(request.user)},
    )
