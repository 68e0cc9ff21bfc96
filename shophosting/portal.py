"""The customer's home page (accounts:home): their stores with the time of each one's last good backup, and the
subscriptions that have room for another store. It composes stores, backups and billing, so it lives in the
composition root; shophosting/urls.py joins it to accounts/urls.py's patterns under the "accounts" namespace."""

from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.shortcuts import render

from backups.models import BackupRun, RunStatus
from billing.selectors import subscriptions_with_room
from stores.selectors import store_list_for_customer


def store_list_with_last_backup(customer):
    """The customer's stores with their plan and the time of their last good backup, in one query."""
    last_backup = BackupRun.objects.filter(store=OuterRef("pk"), status=RunStatus.SUCCEEDED).order_by("-finished_at")
    return store_list_for_customer(customer).annotate(last_backup_at=Subquery(last_backup.values("finished_at")[:1]))


@login_required
def account_home_view(request):
    return render(
        request,
        "accounts/home.html",
        {"stores": store_list_with_last_backup(request.user), "with_room": subscriptions_with_room(request.user)},
    )
