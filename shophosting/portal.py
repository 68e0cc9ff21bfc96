"""The customer's home page (accounts:home): their stores with the time of each one's last good backup, and the
subscriptions that have room for another store. It composes stores, backups and billing, so it lives in the
composition root; shophosting/urls.py joins it to accounts/urls.py's patterns under the "accounts" namespace.

What it shows is read once per change, not once per view: the stores, their last good backups and the
subscriptions are kept per customer until one of those rows changes (shophosting/core/customer_pages.py), or
a plan does (the marketing cache's generation: a plan's name and store limit are shown). Ages ("2 hours
ago") are rendered at each view from the times kept."""

from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.shortcuts import render

from backups.models import BackupRun, RunStatus
from billing.selectors import subscriptions_with_room
from cms.page_cache import GENERATION_KEY
from shophosting.core.customer_pages import customer_page_cached
from stores.selectors import store_list_for_customer


def store_list_with_last_backup(customer):
    """The customer's stores with their plan and the time of their last good backup, in one query."""
    last_backup = BackupRun.objects.filter(store=OuterRef("pk"), status=RunStatus.SUCCEEDED).order_by("-finished_at")
    return store_list_for_customer(customer).annotate(last_backup_at=Subquery(last_backup.values("finished_at")[:1]))


def account_home(customer) -> dict:
    """The dashboard's stores and subscriptions with room, for this customer alone."""
    return {
        "stores": list(store_list_with_last_backup(customer)),
        "with_room": subscriptions_with_room(customer),
    }


@login_required
def account_home_view(request):
    customer = request.user
    context = customer_page_cached(customer, "home", lambda: account_home(customer), also=GENERATION_KEY)
    return render(request, "accounts/home.html", context)
