"""The live store's staging page: create the copy, reveal its password (an audited POST, like the store's
credentials), refresh it from live, push it to live (files, database or both; the database limited to chosen
tables) and undo the last push. A copy is made (or refreshed) from the live store now or from one of its
backups. Each action calls one service; refusals are shown as they are worded."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.services import audit_record
from backups.staging.models import StagingRun
from backups.staging.selectors import staging_overview
from backups.staging.services import staging_create, staging_push, staging_refresh, staging_undo
from provisioning.exceptions import JobConflict
from shophosting.core.ratelimits import rate_limited
from stores.exceptions import InvalidTransition
from stores.models import Store
from stores.selectors import store_of_customer_or_404
from stores.services import store_credentials

REFUSALS = (ValidationError, JobConflict, InvalidTransition)


def _live_store(request, store_id: int) -> Store:
    store = store_of_customer_or_404(request.user, store_id)
    if store.staging_of_id:
        raise Http404("a staging copy has no staging page of its own")
    return store


def _refusal(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def _page(request, store: Store, *, credentials: dict | None = None):
    return render(
        request,
        "staging/staging.html",
        {
            "store": store,
            "overview": staging_overview(store),
            "credentials": credentials,
            "scopes": StagingRun.Scope.choices,
        },
    )


@login_required
def staging_page_view(request, store_id: int):
    return _page(request, _live_store(request, store_id))


@require_POST
@login_required
def staging_reveal_view(request, store_id: int):
    store = _live_store(request, store_id)
    copy = staging_overview(store)["copy"]
    if copy is None:
        raise Http404("no staging copy")
    credentials = store_credentials(copy)
    audit_record(event="staging_credentials_revealed", request=request, store_id=copy.pk)
    return _page(
        request, store, credentials={"user": credentials["staging_user"], "password": credentials["staging_password"]}
    )


def _started(request, store: Store, run: StagingRun, event: str, message: str):
    audit_record(event=event, request=request, store_id=store.pk)
    messages.success(request, message)
    return redirect("stores:job", run.job.store_id, run.job_id)


@require_POST
@login_required
@rate_limited("staging")
def staging_create_view(request, store_id: int):
    store = _live_store(request, store_id)
    try:
        run = staging_create(live_store_id=store.pk, source=request.POST.get("source"), actor=request.user)
    except REFUSALS as exc:
        messages.error(request, _refusal(exc))
        return redirect("staging:page", store.pk)
    return _started(request, store, run, "staging_requested", "Your staging copy is being made.")


@require_POST
@login_required
@rate_limited("staging")
def staging_refresh_view(request, store_id: int):
    store = _live_store(request, store_id)
    try:
        run = staging_refresh(live_store_id=store.pk, source=request.POST.get("source"), actor=request.user)
    except REFUSALS as exc:
        messages.error(request, _refusal(exc))
        return redirect("staging:page", store.pk)
    return _started(request, store, run, "staging_refresh_requested", "Staging is being refreshed from live.")


@require_POST
@login_required
@rate_limited("staging")
def staging_push_view(request, store_id: int):
    store = _live_store(request, store_id)
    try:
        run = staging_push(
            live_store_id=store.pk,
            scope=request.POST.get("scope", ""),
            tables=request.POST.get("tables", ""),
            actor=request.user,
        )
    except REFUSALS as exc:
        messages.error(request, _refusal(exc))
        return redirect("staging:page", store.pk)
    return _started(
        request, store, run, "staging_push_requested", "Pushing staging to live, after a backup of the live store."
    )


@require_POST
@login_required
@rate_limited("staging")
def staging_undo_view(request, store_id: int, run_id: int):
    store = _live_store(request, store_id)
    if not StagingRun.objects.filter(pk=run_id, live=store, kind=StagingRun.Kind.PUSH).exists():
        raise Http404("no such push")
    try:
        run = staging_undo(push_run_id=run_id, actor=request.user)
    except REFUSALS as exc:
        messages.error(request, _refusal(exc))
        return redirect("staging:page", store.pk)
    return _started(request, store, run, "staging_undo_requested", "Undoing the push from the backup taken before it.")
