"""Signup, checkout return pages, the customer's billing page and adding stores. Thin: each calls one service."""

import logging

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing import selectors, stripe_gateway
from billing.exceptions import BILLING_FAILURES, BillingRefused
from billing.forms import PlanSignupForm, SignupForm, StoreAddForm
from billing.models import Subscription
from billing.services.checkout import checkout_start, signup_create
from billing.services.subscriptions import billing_portal_url, subscription_store_add
from provisioning.selectors import job_progress_for_customer, job_setup_latest_for_store
from shophosting.core.ratelimits import rate_limited

logger = logging.getLogger(__name__)


def _checkout_urls(request) -> dict[str, str]:
    success = request.build_absolute_uri(reverse("billing:checkout_success"))
    return {
        # Stripe fills in {CHECKOUT_SESSION_ID}; it must stay unescaped.
        "success_url": success + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": request.build_absolute_uri(reverse("billing:checkout_cancel")),
    }


def _checkout_redirect(request, subscription: Subscription):
    try:
        url = checkout_start(subscription_id=subscription.pk, **_checkout_urls(request))
    except BILLING_FAILURES as exc:
        logger.warning("checkout for subscription %s not started: %s", subscription.pk, exc)
        return render(
            request,
            "billing/checkout_error.html",
            {"subscription": subscription, "error": str(exc)},
            status=503 if isinstance(exc, stripe_gateway.StripeFailure) else 409,
        )
    return redirect(url)


@rate_limited("signup")
def signup_view(request, plan_slug: str):
    plan = selectors.plan_for_signup(plan_slug)
    if plan is None:
        return render(request, "billing/plan_unavailable.html", {"plan_slug": plan_slug}, status=404)
    signed_in = request.user.is_authenticated
    form_class = PlanSignupForm if signed_in else SignupForm
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        fields = form.cleaned_data
        try:
            if signed_in:
                subscription = signup_create(plan=plan, domain=fields["domain"], customer=request.user)
            else:
                subscription = signup_create(
                    plan=plan,
                    domain=fields["domain"],
                    email=fields["email"],
                    password=fields["password"],
                    company=fields["company"],
                )
                login(request, subscription.customer, backend="accounts.backends.AccountBackend")
        except ValidationError as exc:
            form.add_error("domain", exc)
        except BillingRefused as exc:
            form.add_error(None, str(exc))
        else:
            return _checkout_redirect(request, subscription)
    return render(request, "billing/signup.html", {"plan": plan, "form": form, "signed_in": signed_in})


@require_POST
@login_required
def checkout_resume_view(request, subscription_id: int):
    """Pay for a signup whose checkout was canceled or failed to open."""
    subscription = get_object_or_404(
        Subscription, pk=subscription_id, customer=request.user, status=Subscription.Status.CHECKOUT
    )
    return _checkout_redirect(request, subscription)


@login_required
def checkout_success_view(request):
    subscriptions = Subscription.objects.filter(customer=request.user)
    subscription = (
        subscriptions.filter(checkout_session_id=request.GET.get("session_id") or "-").first()
        or subscriptions.order_by("-created_at").first()
    )
    if subscription is None:
        return redirect("accounts:home")
    store = subscription.stores.order_by("pk").first()
    job = job_setup_latest_for_store(store.pk) if store else None
    return render(
        request,
        "billing/checkout_success.html",
        {
            "subscription": subscription,
            "state": selectors.checkout_state(subscription),
            "store": store,
            "job": job,
            "progress": job_progress_for_customer(job) if job else None,
            "progress_url": reverse("stores:setup_progress", args=[store.pk]) if store else None,
        },
    )


@login_required
def checkout_cancel_view(request):
    pending = Subscription.objects.filter(customer=request.user, status=Subscription.Status.CHECKOUT).first()
    return render(request, "billing/checkout_cancel.html", {"pending": pending})


@login_required
def billing_view(request):
    return render(request, "billing/billing.html", {"billing": selectors.customer_billing(request.user)})


@require_POST
@login_required
def billing_portal_view(request):
    try:
        url = billing_portal_url(customer=request.user, return_url=request.build_absolute_uri(reverse("billing:page")))
    except BILLING_FAILURES as exc:
        messages.error(request, f"The billing portal could not be opened: {exc}")
        return redirect("billing:page")
    return redirect(url)


@login_required
def store_add_view(request, subscription_id: int):
    subscription = get_object_or_404(
        Subscription.objects.select_related("plan"), pk=subscription_id, customer=request.user
    )
    form = StoreAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            store = subscription_store_add(
                subscription_id=subscription.pk,
                domain=form.cleaned_data["domain"],
                site_title=form.cleaned_data["site_title"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error("domain", exc)
        except BillingRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{store.domain} is being set up.")
            return redirect("stores:detail", store.pk)
    return render(request, "billing/store_add.html", {"subscription": subscription, "form": form})
