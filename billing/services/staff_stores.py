"""Staff open or delete a customer's store: billing (the subscription, Stripe) and the engine (the store and
its teardown) in one step, so the customer is never charged for a store that is gone nor given one unpaid
unless staff say why."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import User
from accounts.services import customer_create
from billing import stripe_gateway
from billing.exceptions import BILLING_FAILURES, BillingRefused
from billing.models import Plan, Subscription
from billing.services.checkout import checkout_start, signup_create
from billing.services.subscriptions import subscription_live_stores, subscription_transition
from provisioning.models import ProvisioningJob as Job
from provisioning.orders import store_order_paid
from provisioning.services import job_enqueue, job_preflight
from shophosting.core.emails import email_send
from shophosting.core.transitions import InvalidTransition
from stores.models import Store

logger = logging.getLogger(__name__)

SS = Subscription.Status


def store_delete(*, store_id: int, actor: User) -> Job:
    """Staff delete a store now: its containers and volumes are torn down, and when it is the last live store of
    its subscription the Stripe subscription is canceled first, so the customer is never charged for nothing.

    Whether the teardown can start is checked before Stripe is called, so a store that is busy is refused with
    billing untouched. Stripe is called outside any transaction: when it refuses, nothing changes here and the
    caller shows the error."""
    store = Store.objects.select_related("subscription").get(pk=store_id)
    job_preflight(store=store, kind=Job.Kind.TEARDOWN)  # before Stripe; job_enqueue checks again under the lock
    subscription = store.subscription
    last_store = subscription is not None and not subscription_live_stores(subscription).exclude(pk=store.pk).exists()
    if last_store and subscription.status in (SS.ACTIVE, SS.PAST_DUE, SS.SUSPENDED):
        if subscription.stripe_subscription_id:
            stripe_gateway.subscription_cancel(subscription_id=subscription.stripe_subscription_id)
        now = timezone.now()
        try:
            subscription_transition(
                subscription_id=subscription.pk,
                to=SS.CANCELED,
                actor=actor,
                note=f"canceled by staff with the deletion of {store.domain}",
                canceled_at=now,
                teardown_at=now,
            )
        except InvalidTransition:
            # Stripe's customer.subscription.deleted webhook got here first: the outcome is the same.
            if Subscription.objects.get(pk=subscription.pk).status != SS.CANCELED:
                raise
    elif last_store and subscription.status == SS.PAYMENT_PENDING:
        # The bank debit cannot be stopped; deleting now could charge the customer for a store that is gone.
        raise BillingRefused(
            f"The customer's payment for {store.domain} is still processing at the bank. "
            "Delete the store once it has cleared (then it is canceled in Stripe) or failed."
        )
    elif last_store and subscription.status == SS.CHECKOUT:
        if subscription.checkout_session_id:
            if stripe_gateway.checkout_session_expire(session_id=subscription.checkout_session_id) == "complete":
                raise BillingRefused(f"The customer has just paid for {store.domain}; it is being set up. Reload.")
        subscription_transition(
            subscription_id=subscription.pk, to=SS.ABANDONED, actor=actor, note=f"{store.domain} deleted by staff"
        )
    return job_enqueue(store_id=store.pk, kind=Job.Kind.TEARDOWN, actor=actor)


@dataclass
class StaffOrder:
    subscription: Subscription
    store: Store
    customer_created: bool
    checkout_url: str | None  # None when payment was skipped or Stripe could not open a checkout
    payment_note: str


def staff_store_create(
    *,
    email: str,
    plan: Plan,
    domain: str,
    actor: User,
    skip_payment: bool,
    reason: str = "",
    company: str = "",
    first_name: str = "",
    last_name: str = "",
) -> StaffOrder:
    """Staff open a store for a customer (new or existing). With `skip_payment` (a trial, a migration, a
    partner) the subscription is active without Stripe and provisioning starts at once; the reason is kept on
    the subscription's event. Otherwise the customer is e-mailed a Checkout link to pay, as after a signup.
    A new customer gets a link to set their own password; staff never learn it."""
    if skip_payment and not reason.strip():
        raise BillingRefused("Say why payment is skipped (for example: 14-day trial agreed by sales).")
    with transaction.atomic():
        customer = User.objects.filter(email__iexact=email).first()
        if customer is not None and customer.is_staff:
            raise BillingRefused("That address belongs to a staff account; use the customer's own address.")
        customer_created = customer is None
        if customer_created:
            customer = customer_create(
                email=email, password=None, company=company, first_name=first_name, last_name=last_name
            )
        subscription = signup_create(plan=plan, domain=domain, customer=customer)
        store = subscription.stores.get()
        if skip_payment:
            subscription = subscription_transition(
                subscription_id=subscription.pk, to=SS.ACTIVE, actor=actor, note=f"payment skipped by staff: {reason}"
            )
            store_order_paid(store_id=store.pk, actor=actor)
    checkout_url, payment_note = None, "payment skipped: " + reason if skip_payment else ""
    if not skip_payment:
        site = settings.SITE_URL.rstrip("/")
        try:
            checkout_url = checkout_start(
                subscription_id=subscription.pk,
                success_url=site + reverse("billing:checkout_success") + "?session_id={CHECKOUT_SESSION_ID}",
                cancel_url=site + reverse("billing:checkout_cancel"),
            )
        except BILLING_FAILURES as exc:
            payment_note = f"no payment link yet ({exc}); the customer can pay from their dashboard"
    context = {
        "store": store,
        "plan": plan,
        "checkout_url": checkout_url,
        "skip_payment": skip_payment,
        "set_password_path": _set_password_path(customer) if customer_created else "",
        "login_path": reverse("accounts:login"),
    }
    try:
        email_send(template="store_opened_by_staff", to=[customer.email], context=context)
    except Exception as exc:  # noqa: BLE001 - the store exists either way; staff are told to reach the customer
        logger.warning("store %s opened by staff, but the e-mail to %s failed: %s", store.pk, customer.email, exc)
        payment_note = f"{payment_note + '; ' if payment_note else ''}the e-mail to {customer.email} failed: {exc}"
    return StaffOrder(subscription, store, customer_created, checkout_url, payment_note)


def _set_password_path(user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("accounts:password_reset_confirm", args=[uid, default_token_generator.make_token(user)])
