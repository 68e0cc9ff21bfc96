"""A subscription's state and what hangs off it. `subscription_transition` is the only code that writes
Subscription.status (row lock, allowed edge, a SubscriptionEvent); the helpers here note what happened on the
subscription and queue jobs for its stores. Also: a customer adding a store to a multi-store plan, and the
link to Stripe's billing portal."""

from django.db import transaction

from accounts.models import User
from billing import stripe_gateway
from billing.exceptions import BillingRefused
from billing.models import Subscription, SubscriptionEvent
from provisioning.exceptions import JobConflict
from provisioning.orders import store_order_paid
from provisioning.services import job_enqueue
from shophosting.core.transitions import InvalidTransition, transition
from stores.models import Store
from stores.services import store_create

SS = Subscription.Status
# to-status -> the statuses it may be reached from.
SUBSCRIPTION_ALLOWED_FROM: dict[str, set[str]] = {
    SS.CHECKOUT: {SS.PAYMENT_PENDING},  # a delayed payment (SEPA, ACH) failed: the customer can pay another way
    SS.PAYMENT_PENDING: {SS.CHECKOUT},
    SS.ACTIVE: {SS.CHECKOUT, SS.PAYMENT_PENDING, SS.PAST_DUE, SS.SUSPENDED},
    SS.PAST_DUE: {SS.ACTIVE},
    SS.SUSPENDED: {SS.PAST_DUE},
    SS.CANCELED: {SS.ACTIVE, SS.PAST_DUE, SS.SUSPENDED},
    SS.ENDED: {SS.CANCELED},
    SS.ABANDONED: {SS.CHECKOUT},
}
# Stores that still count against the plan's store limit.
LIVE_STORE_STATUSES = [s for s in Store.Status.values if s not in (Store.Status.DELETING, Store.Status.DELETED)]


def subscription_transition(
    *, subscription_id: int, to: str, stripe_event_id: str = "", actor: User | None = None, note: str = "", **fields
) -> Subscription:
    """The only code that writes Subscription.status: locks the row, checks the edge against
    SUBSCRIPTION_ALLOWED_FROM, saves `fields` with the status and records a SubscriptionEvent."""
    return transition(
        Subscription,
        subscription_id,
        to,
        allowed_from=SUBSCRIPTION_ALLOWED_FROM,
        event_model=SubscriptionEvent,
        event_link="subscription",
        actor=actor,
        note=note,
        event_fields={"stripe_event_id": stripe_event_id},
        **fields,
    )


def subscription_note(subscription: Subscription, note: str, *, stripe_event_id: str = "") -> None:
    """Something staff should see in the subscription's history that did not change its status."""
    SubscriptionEvent.objects.create(
        subscription=subscription,
        old_status=subscription.status,
        new_status=subscription.status,
        stripe_event_id=stripe_event_id,
        note=note,
    )


def subscription_live_stores(subscription: Subscription):
    return subscription.stores.filter(status__in=LIVE_STORE_STATUSES).order_by("pk")


def subscription_store_job_enqueue(subscription: Subscription, *, store_id: int, kind: str, note: str) -> bool:
    """A job for one store; a store that is busy keeps its state, and that is noted for staff."""
    try:
        job_enqueue(store_id=store_id, kind=kind)
    except (JobConflict, InvalidTransition) as exc:
        subscription_note(subscription, f"{note}: store {store_id} not changed: {exc}")
        return False
    return True


def subscription_store_add(*, subscription_id: int, domain: str = "", site_title: str = "", actor: User) -> Store:
    """Another store on a multi-store plan, up to the plan's store limit. It is paid for, so it is queued at once.
    `domain`, optional, starts its proof flow (a pending custom domain), as at signup."""
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().select_related("plan").get(pk=subscription_id)
        if subscription.status != SS.ACTIVE:
            raise BillingRefused("Stores can be added only while the subscription is active and paid up.")
        used = subscription_live_stores(subscription).count()
        if used >= subscription.plan.store_limit:
            raise BillingRefused(
                f"Your {subscription.plan.name} plan includes {subscription.plan.store_limit} "
                f"store{'s' if subscription.plan.store_limit != 1 else ''}, and all are in use. "
                "Upgrade the plan to add more."
            )
        store = store_create(
            customer=subscription.customer,
            plan=subscription.plan,
            custom_domain=domain,
            site_title=site_title,
            subscription=subscription,
            actor=actor,
        )
        store_order_paid(store_id=store.pk, actor=actor)
    return store


def billing_portal_url(*, customer: User, return_url: str) -> str:
    stripe_customer_id = (
        Subscription.objects.filter(customer=customer)
        .exclude(stripe_customer_id="")
        .values_list("stripe_customer_id", flat=True)
        .first()
    )
    if not stripe_customer_id:
        raise BillingRefused("There is no paid subscription on this account yet.")
    return stripe_gateway.billing_portal_url(customer_id=stripe_customer_id, return_url=return_url)
