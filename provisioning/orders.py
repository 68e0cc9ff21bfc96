"""A paid order becomes a provisioning job. Here, not in stores: starting provisioning is provisioning's
decision, and billing (the checkout webhook), backups (a restore into a new store) and the store_provision
command all call it from above."""

from django.db import transaction

from accounts.models import User
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue
from stores.models import Store
from stores.services import store_transition


@transaction.atomic
def store_order_paid(*, store_id: int, actor: User | None = None) -> ProvisioningJob:
    """A paid order: the store is queued and provisioning starts (the billing webhook calls this).

    Idempotent: webhooks arrive more than once, and one order gets one provisioning job."""
    store = Store.objects.select_for_update().get(pk=store_id)
    existing = store.jobs.filter(kind=ProvisioningJob.Kind.PROVISION).first()
    if existing is not None:
        return existing
    if store.status == Store.Status.AWAITING_PAYMENT:
        store_transition(store_id=store.pk, to=Store.Status.QUEUED, actor=actor, note="payment received")
    return job_enqueue(store_id=store.pk, kind=ProvisioningJob.Kind.PROVISION, actor=actor)
