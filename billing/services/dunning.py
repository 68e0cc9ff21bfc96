"""Dunning: a past-due subscription keeps its stores running for BILLING_GRACE_PERIOD_DAYS, then it is
suspended and its running stores are stopped. (Past due starts with invoice.payment_failed, in stripe_events.)"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import Subscription
from billing.services.subscriptions import (
    subscription_live_stores,
    subscription_store_job_enqueue,
    subscription_transition,
)
from provisioning.models import ProvisioningJob as Job
from shophosting.core.emails import email_send
from shophosting.core.transitions import InvalidTransition
from stores.models import Store

SS = Subscription.Status


def grace_period() -> timedelta:
    """How long a past-due subscription keeps its stores running."""
    return timedelta(days=settings.BILLING_GRACE_PERIOD_DAYS)


def dunning_enforce(*, now=None) -> list[int]:
    """Suspend the stores of subscriptions past due for longer than the grace period. Run periodically."""
    now = now or timezone.now()
    suspended = []
    overdue = Subscription.objects.filter(status=SS.PAST_DUE, past_due_since__lte=now - grace_period())
    for subscription_id in overdue.values_list("pk", flat=True):
        with transaction.atomic():
            try:
                subscription = subscription_transition(
                    subscription_id=subscription_id,
                    to=SS.SUSPENDED,
                    note=f"unpaid for more than {settings.BILLING_GRACE_PERIOD_DAYS} days",
                )
            except InvalidTransition:
                continue  # paid in the meantime
            stores = list(subscription_live_stores(subscription).filter(status=Store.Status.ACTIVE))
            _jobs_enqueue(subscription, kind=Job.Kind.SUSPEND, from_status=Store.Status.ACTIVE, note="suspend")
            context = {"plan": subscription.plan, "stores": stores, "grace_days": settings.BILLING_GRACE_PERIOD_DAYS}
            email = subscription.customer.email
            transaction.on_commit(lambda c=context, e=email: email_send(template="stores_suspended", to=[e], context=c))
        suspended.append(subscription_id)
    return suspended


def _jobs_enqueue(subscription: Subscription, *, kind: str, from_status: str, note: str) -> list[int]:
    """One job per store in `from_status`."""
    stores = subscription.stores.filter(status=from_status).order_by("pk")
    return [s.pk for s in stores if subscription_store_job_enqueue(subscription, store_id=s.pk, kind=kind, note=note)]
