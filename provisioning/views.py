"""The customer's store page: the store with its latest job's progress (polled as JSON), the restart button,
and one page per job of any kind (setup, restart, backup, restore, verification) with the same widget. Served
under the stores namespace (shophosting/urls.py joins these to stores/urls.py); it lives in
provisioning because it shows and starts provisioning jobs, which stores must not import."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.services import audit_record
from provisioning.care.selectors import store_care
from provisioning.domains import store_domain_delete, store_domain_request, store_names_check, store_primary_change
from provisioning.exceptions import JobConflict
from provisioning.models import ProvisioningJob
from provisioning.selectors import (
    job_latest_for_store,
    job_progress_for_customer,
    job_setup_latest_for_store,
    store_addresses,
    store_domains_waiting,
    store_firewall,
)
from provisioning.services import job_enqueue, store_hsts_change
from shophosting.core.ratelimits import rate_limited
from stores.exceptions import InvalidTransition
from stores.models import Store
from stores.selectors import store_disk_usage, store_history, store_of_customer_or_404, store_usage_chart


def _own_job(store: Store, job_id: int) -> ProvisioningJob:
    return get_object_or_404(ProvisioningJob, pk=job_id, store=store)


@login_required
def store_detail_view(request, store_id: int):
    store = store_of_customer_or_404(request.user, store_id)
    job = job_latest_for_store(store.pk)
    return render(
        request,
        "stores/store_detail.html",
        {
            "store": store,
            "job": job,
            "progress": job_progress_for_customer(job) if job else None,
            "progress_url": reverse("stores:progress", args=[store.pk]),
            "usage": store_usage_chart(store),
            "disk": store_disk_usage(store),
            "history": store_history(store),
            "firewall": store_firewall(store),
            "care": store_care(store),
            "addresses": store_addresses(store)
            if store.status in (Store.Status.ACTIVE, Store.Status.SUSPENDED)
            else [],
            "domains_waiting": store_domains_waiting(store),
            "domain_form": DomainAddForm(),
        },
    )


class DomainAddForm(forms.Form):
    domain = forms.CharField(max_length=253, label="Your domain", help_text="For example shop.example.com.")
    include_www = forms.BooleanField(required=False, initial=True, label="Also its www. address")


def _messages_of(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@require_POST
@login_required
@rate_limited("domains", key="user")
def store_domain_add_view(request, store_id: int):
    """Add a custom domain (and its www. alias): it waits for its DNS proof, which is checked at once."""
    store = store_of_customer_or_404(request.user, store_id)
    form = DomainAddForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter the domain to add, for example shop.example.com.")
        return redirect("stores:detail", store.pk)
    try:
        rows = store_domain_request(
            store_id=store.pk,
            domain=form.cleaned_data["domain"],
            include_www=form.cleaned_data["include_www"],
            actor=request.user,
        )
    except ValidationError as exc:
        messages.error(request, f"Not added: {_messages_of(exc)}")
    else:
        audit_record(event="store_domain_added", request=request, store_id=store.pk, names=[r.name for r in rows])
        messages.success(request, f"Added {' and '.join(r.name for r in rows)}. Create the DNS record shown below.")
    return redirect("stores:detail", store.pk)


@require_POST
@login_required
@rate_limited("domains", key="user")
def store_domain_check_view(request, store_id: int):
    """Check now: ask DNS for the proof of the store's waiting names (and unreachable ones)."""
    store = store_of_customer_or_404(request.user, store_id)
    activated = store_names_check(store_id=store.pk, actor=request.user)
    if activated:
        messages.success(request, f"Proven: {', '.join(activated)}. HTTPS for it is being set up.")
    else:
        messages.info(request, "Not proven yet: see each domain's last check below. DNS changes can take a while.")
    return redirect("stores:detail", store.pk)


@require_POST
@login_required
@rate_limited("domains", key="user")
def store_domain_primary_view(request, store_id: int, name_id: int):
    """Make an active name the store's primary one: the shop's links move there and the others redirect."""
    store = store_of_customer_or_404(request.user, store_id)
    try:
        store_primary_change(store_id=store.pk, name_id=name_id, actor=request.user)
    except ValidationError as exc:
        messages.error(request, f"The primary name is unchanged: {_messages_of(exc)}")
    except (JobConflict, InvalidTransition) as exc:
        messages.error(request, f"The primary name cannot be changed now: {exc}")
    else:
        audit_record(event="store_primary_name_changed", request=request, store_id=store.pk, name_id=name_id)
        messages.success(request, "Changing the primary name: your shop restarts with it in a moment.")
    return redirect("stores:detail", store.pk)


@require_POST
@login_required
@rate_limited("domains", key="user")
def store_domain_remove_view(request, store_id: int, name_id: int):
    store = store_of_customer_or_404(request.user, store_id)
    try:
        store_domain_delete(store_id=store.pk, name_id=name_id, actor=request.user)
    except ValidationError as exc:
        messages.error(request, f"Not removed: {_messages_of(exc)}")
    else:
        audit_record(event="store_domain_removed", request=request, store_id=store.pk, name_id=name_id)
        messages.success(request, "Domain removed.")
    return redirect("stores:detail", store.pk)


@login_required
def store_job_view(request, store_id: int, job_id: int):
    """One job of the store, of any kind (a backup, a restore, a restart ...), followed live."""
    store = store_of_customer_or_404(request.user, store_id)
    job = _own_job(store, job_id)
    return render(
        request,
        "stores/job_detail.html",
        {
            "store": store,
            "job": job,
            "progress": job_progress_for_customer(job),
            "progress_url": reverse("stores:job_progress", args=[store.pk, job.pk]),
        },
    )


@never_cache
@login_required
@rate_limited("job_progress", methods=("GET",))
def store_progress_view(request, store_id: int, job_id: int | None = None, setup: bool = False):
    """The JSON the progress widget polls: the store's latest job, its setup job (`setup`), or the job
    `job_id`."""
    store = store_of_customer_or_404(request.user, store_id)
    if job_id is not None:
        job = _own_job(store, job_id)
    else:
        job = job_setup_latest_for_store(store.pk) if setup else job_latest_for_store(store.pk)
    return JsonResponse(
        {
            "store": {
                "status": store.status,
                "status_display": store.get_status_display(),
                "message": store.status_message,
            },
            "progress": job_progress_for_customer(job) if job else None,
        }
    )


@require_POST
@login_required
def store_restart_view(request, store_id: int):
    """Restart the store's containers as a job; the store page follows it live."""
    store = store_of_customer_or_404(request.user, store_id)
    try:
        job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.RESTART, actor=request.user)
    except (JobConflict, InvalidTransition) as exc:
        messages.error(request, f"The store cannot be restarted now: {exc}")
    else:
        audit_record(event="store_restart_requested", request=request, store_id=store.pk)
        messages.success(request, "Restarting your store. It is back in a few seconds.")
    return redirect("stores:detail", store.pk)


@require_POST
@login_required
def store_hsts_view(request, store_id: int):
    """Turn HSTS on (only with the warning acknowledged) or off; a job rewrites the vhost."""
    store = store_of_customer_or_404(request.user, store_id)
    enabled = request.POST.get("hsts") == "on"
    if enabled and request.POST.get("understood") != "yes":
        messages.error(request, "HSTS stays off: tick the box to confirm you read the warning.")
        return redirect("stores:detail", store.pk)
    try:
        store_hsts_change(store_id=store.pk, enabled=enabled, actor=request.user)
    except (JobConflict, InvalidTransition) as exc:
        messages.error(request, f"HSTS cannot be changed now: {exc}")
    else:
        audit_record(event="store_hsts_changed", request=request, store_id=store.pk)
        messages.success(request, f"HSTS is being turned {'on' if enabled else 'off'}.")
    return redirect("stores:detail", store.pk)


# Joined to stores/urls.py's patterns under the "stores" namespace by shophosting/urls.py.
store_urlpatterns = [
    path("<int:store_id>/", store_detail_view, name="detail"),
    path("<int:store_id>/progress.json", store_progress_view, name="progress"),
    path("<int:store_id>/setup/progress.json", store_progress_view, {"setup": True}, name="setup_progress"),
    path("<int:store_id>/jobs/<int:job_id>/", store_job_view, name="job"),
    path("<int:store_id>/jobs/<int:job_id>/progress.json", store_progress_view, name="job_progress"),
    path("<int:store_id>/restart/", store_restart_view, name="restart"),
    path("<int:store_id>/hsts/", store_hsts_view, name="hsts"),
    path("<int:store_id>/domains/", store_domain_add_view, name="domain_add"),
    path("<int:store_id>/domains/check/", store_domain_check_view, name="domain_check"),
    path("<int:store_id>/domains/<int:name_id>/primary/", store_domain_primary_view, name="domain_primary"),
    path("<int:store_id>/domains/<int:name_id>/remove/", store_domain_remove_view, name="domain_remove"),
]
