"""The customer's "Leaving" page: download their account data, or close their account. Thin: each view
calls one service (billing/account_export.py, billing/services/closure.py)."""

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.closure import AccountClosureRefused, ClosurePasswordWrong
from billing.account_export import account_export
from billing.exceptions import BILLING_FAILURES
from billing.forms import AccountCloseForm
from billing.services.closure import account_close, closure_retention_days
from shophosting.core.ratelimits import rate_limited
from stores.models import Store


@require_POST
@login_required
@rate_limited("account_leaving", key="user")
def account_export_view(request):
    archive = account_export(customer=request.user, request=request)
    response = HttpResponse(archive, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="shophosting-account-{timezone.now():%Y-%m-%d}.zip"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@rate_limited("account_leaving", key="user")
def account_leave_view(request):
    form = AccountCloseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            closure = account_close(
                customer_id=request.user.pk, actor=request.user, password=form.cleaned_data["password"], request=request
            )
        except ClosurePasswordWrong as exc:
            form.add_error("password", str(exc))
        except AccountClosureRefused as exc:
            form.add_error(None, str(exc))
        except BILLING_FAILURES as exc:
            form.add_error(
                None,
                f"Your subscription could not be canceled at our payment provider: {exc}. Nothing "
                "was changed; try again in a few minutes.",
            )
        else:
            logout(request)
            return render(request, "billing/account_closed.html", {"retention_days": closure.retention_days})
    stores = Store.objects.filter(customer=request.user).exclude(status=Store.Status.DELETED).order_by("pk")
    return render(
        request,
        "billing/account_leave.html",
        {
            "form": form,
            "stores": stores,
            "retention_days": closure_retention_days(request.user),
            "log_retention_days": settings.LOG_RETENTION_DAYS,
        },
    )
