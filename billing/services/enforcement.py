"""What billing makes a subscription's stores do: fit them into the plan's store limit (hold the newest beyond
it, release held ones the plan covers again), keep every store in the state its billing asks for once the
store is free (stores_billing_enforce), and tear down a canceled subscription's stores when its retention
period is over."""

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.services import audit_record
from backups.services.backup import final_backup_request, store_has_final_backup
from billing.models import StoreHold, Subscription
from billing.services.subscriptions import (
    subscription_live_stores,
    subscription_note,
    subscription_store_job_enqueue,
    subscription_transition,
)
from provisioning.exceptions import JobConflict
from provisioning.models import ProvisioningJob as Job
from provisioning.services import job_enqueue
from shophosting.core.emails import email_send
from stores.models import Store
from stores.operations import store_operation_active

SS = Subscription.Status


def stores_fit_plan(subscription: Subscription, *, stripe_event_id: str = "") -> set[int]:
    """Fit the subscription's stores into its plan's store limit. Returns the ids of the stores given a job.

    Beyond the limit, the newest stores are held: suspended (a suspend job), never deleted, each audited,
    and the customer is e-mailed the list. A held store keeps its data and backups and is not resumed by a
    paid invoice. When a later plan covers more stores, the oldest held stores are released and resumed."""
    live = list(subscription_live_stores(subscription))
    held = {hold.store_id: hold for hold in StoreHold.objects.filter(store__in=live)}
    covered = [store for store in live if store.pk not in held]
    limit = subscription.plan.store_limit
    jobs, newly_held = set(), []
    for store in covered[limit:]:  # oldest first, so the newest are the ones left out
        StoreHold.objects.create(
            store=store, subscription=subscription, plan=subscription.plan, stripe_event_id=stripe_event_id
        )
        newly_held.append(store)
        note = (
            f"{store.domain} held: beyond the {subscription.plan.store_limit}-store limit of {subscription.plan.slug}"
        )
        subscription_note(subscription, note, stripe_event_id=stripe_event_id)
        audit_record(
            event="store_held_for_plan_limit", subscription=subscription.pk, store=store.pk, plan=subscription.plan.slug
        )
        if store.status == Store.Status.ACTIVE and subscription_store_job_enqueue(
            subscription, store_id=store.pk, kind=Job.Kind.SUSPEND, note="held for the plan's store limit"
        ):
            jobs.add(store.pk)
        # A store that is not running yet is suspended by stores_billing_enforce once it is.
    room = limit - len(covered)
    for store_id in sorted(held)[: max(room, 0)]:
        store = next(s for s in live if s.pk == store_id)
        held[store_id].delete()
        subscription_note(
            subscription, f"{store.domain} released: the plan covers it again", stripe_event_id=stripe_event_id
        )
        audit_record(
            event="store_released_for_plan_limit",
            subscription=subscription.pk,
            store=store.pk,
            plan=subscription.plan.slug,
        )
        if (
            store.status == Store.Status.SUSPENDED
            and subscription.status in (SS.ACTIVE, SS.PAST_DUE)
            and subscription_store_job_enqueue(
                subscription, store_id=store.pk, kind=Job.Kind.RESUME, note="released from hold"
            )
        ):
            jobs.add(store.pk)
    if newly_held:
        context = {"plan": subscription.plan, "stores": newly_held, "kept": covered[:limit]}
        email = subscription.customer.email
        transaction.on_commit(lambda: email_send(template="stores_over_plan_limit", to=[email], context=context))
    return jobs


# Subscriptions whose stores must not run, and the one whose suspended stores may run again.
STOPS_STORES = (SS.SUSPENDED, SS.CANCELED)


def stores_billing_enforce() -> list[int]:
    """Every store in the state its billing asks for; returns the stores queued. Run every ten minutes.

    A billing job refused because its store was busy (a backup, a restore, a verification, another job) is
    only noted on the subscription when the event arrives; this queues it once the store is free. So a store
    busy at the moment of a suspension never escapes it, and one busy when its payment arrived does not stay
    stopped. Covers: running stores held beyond the plan's limit (or still being built when held), running
    stores of a suspended or canceled subscription, and stores that billing suspended whose subscription is
    paid again. A store that staff suspended (its last suspend job has an actor) is left as it is."""
    must_stop = (
        Store.objects.filter(status=Store.Status.ACTIVE, subscription__isnull=False)
        .filter(Q(billing_hold__isnull=False) | Q(subscription__status__in=STOPS_STORES))
        .select_related("subscription")
        .order_by("pk")
    )
    may_run = (
        Store.objects.filter(status=Store.Status.SUSPENDED, subscription__status=SS.ACTIVE, billing_hold__isnull=True)
        .select_related("subscription")
        .order_by("pk")
    )
    queued = []
    for kind, stores in ((Job.Kind.SUSPEND, must_stop), (Job.Kind.RESUME, may_run)):
        for store in stores:
            if store_operation_active(store_id=store.pk):
                continue  # the next run, once the store is free
            if kind == Job.Kind.RESUME and not store_suspended_by_billing(store):
                continue
            if subscription_store_job_enqueue(
                store.subscription, store_id=store.pk, kind=kind, note="billing enforced"
            ):
                queued.append(store.pk)
    return queued


def store_suspended_by_billing(store: Store) -> bool:
    """Billing and the periodic jobs queue their jobs without an actor; staff suspend with their name."""
    last = store.jobs.filter(kind=Job.Kind.SUSPEND, status=Job.Status.SUCCEEDED).order_by("-pk").first()
    return last is not None and last.created_by_id is None


def subscriptions_teardown_due(*, now=None) -> list[int]:
    """Tear down the stores of canceled subscriptions whose retention period is over. Run periodically."""
    now = now or timezone.now()
    ended = []
    for subscription in Subscription.objects.filter(status=SS.CANCELED, teardown_at__lte=now):
        with transaction.atomic():
            pending = False
            for store in subscription.stores.exclude(status__in=[Store.Status.DELETED, Store.Status.DELETING]):
                if not store_has_final_backup(store):
                    # Never delete a store whose last data is not safe: back it up first, tear down next run.
                    final_backup_request(store_id=store.pk)
                    pending = True
                    continue
                try:
                    job_enqueue(store_id=store.pk, kind=Job.Kind.TEARDOWN)
                except JobConflict:
                    pending = True  # a job is still running; the next run tears this store down
            if not pending:
                subscription_transition(subscription_id=subscription.pk, to=SS.ENDED, note="retention period over")
                ended.append(subscription.pk)
    return ended
