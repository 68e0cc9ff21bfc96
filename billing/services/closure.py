"""Closing a customer's account (issue #19, "Leaving"): asked by the customer on their account page (with
their password) or by staff at the customer's request (with the `accounts.close_customer_account`
permission); both go through `account_close`.

    closing: subscriptions canceled in Stripe (stripe_gateway), sign-in refused, each store that went live
             given its final backup (backups.services.backup.final_backup_request, the path a canceled
             subscription takes) and torn down once that backup is safe
    closed:  every store torn down; the final backups are kept for the stated retention
    purged:  the snapshots forgotten (backups.services.retention), tickets and consultation requests
             deleted, Stripe's mirrored personal fields emptied, the customer row anonymised and the audit
             rows redacted (accounts.closure)

`account_closures_advance` (every ten minutes, shophosting/cron.py) moves each closure along. This lives in
billing because closing drives subscriptions, stores and backups, which accounts sits below; accounts keeps
the AccountClosure record and its status (accounts/closure.py)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from djstripe.models import Customer as MirroredCustomer
from djstripe.models import Invoice as MirroredInvoice

from accounts.closure import (
    CLOSE_PERMISSION,
    AccountClosureRefused,
    ClosurePasswordWrong,
    account_personal_data_erase,
    closed_account_placeholder,
    closure_mark_closed,
    closure_open,
)
from accounts.models import AccountClosure, User
from accounts.services import audit_record
from backups.models import BackupRun
from backups.services.backup import final_backup_request, store_has_final_backup
from backups.services.retention import retention_days, store_snapshots_forget
from billing import stripe_gateway
from billing.models import Subscription
from billing.services.subscriptions import subscription_transition
from consultations.attachments import attachment_path
from consultations.models import ConsultationRequest, ContactMessage, Ticket, TicketAttachment
from provisioning.exceptions import JobConflict
from provisioning.models import ProvisioningJob as Job
from provisioning.services import job_enqueue
from shophosting.core.emails import email_send
from shophosting.core.transitions import InvalidTransition
from stores.models import Store
from stores.operations import store_operation_active

logger = logging.getLogger(__name__)

SS = Subscription.Status
CS = AccountClosure.Status
# Subscriptions that Stripe still charges: canceled at once when the account closes.
CHARGING = (SS.ACTIVE, SS.PAST_DUE, SS.SUSPENDED)
# Fields of Stripe's customer and invoice objects (as dj-stripe mirrors them) that name a person.
STRIPE_PERSONAL_FIELDS = ("email", "name", "phone", "address", "shipping", "description")
STRIPE_INVOICE_PERSONAL_FIELDS = (
    "customer_email",
    "customer_name",
    "customer_phone",
    "customer_address",
    "customer_shipping",
)


def closure_retention_days(customer: User) -> int:
    """How long the final backups are kept after closing, as the close page states it: the shortest backup
    retention among the customer's stores (backups.services.retention.retention_days), so the daily
    `backups_prune` never forgets a snapshot before the stated date and the purge forgets the rest on it."""
    stores = Store.objects.filter(customer=customer).select_related("plan")
    return min((retention_days(store) for store in stores), default=settings.BACKUP_RETENTION_DAYS_DAILY_PLANS)


def account_close(
    *, customer_id: int, actor: User, password: str = "", reason: str = "", request=None
) -> AccountClosure:
    """Close an account: the customer themselves (their `password` re-entered) or staff with the close
    permission, at the customer's request (`reason` says how they asked: required). Refused with nothing
    changed (and audited) for a wrong password, a staff member without the permission, a staff account, an
    account already closing or closed, and a payment still processing at the bank. Stripe is called first,
    outside any transaction: when it refuses, nothing changes here and the error is shown."""
    customer = User.objects.get(pk=customer_id)
    via = _closing_allowed(customer=customer, actor=actor, password=password, request=request)
    if via == AccountClosure.Via.STAFF and not reason.strip():
        raise AccountClosureRefused("Say how the customer asked (for example: their e-mail of 5 December).")
    # Checked again under the user's row lock (closure_open); here so that Stripe is never asked for nothing.
    if customer.is_staff:
        raise AccountClosureRefused("Staff accounts are not closed here; deactivate them under Admin users.")
    if AccountClosure.objects.filter(user=customer).exists():
        raise AccountClosureRefused("This account is already closing or closed; nothing was changed.")
    subscriptions = list(Subscription.objects.filter(customer=customer).order_by("pk"))
    if any(s.status == SS.PAYMENT_PENDING for s in subscriptions):
        # A bank debit cannot be stopped: closing now could charge the customer for stores that are gone.
        raise AccountClosureRefused(
            "A payment on this account is still processing at the bank. Close the account once it has cleared "
            "or failed; nothing was changed."
        )
    for subscription in subscriptions:
        if subscription.status in CHARGING and subscription.stripe_subscription_id:
            stripe_gateway.subscription_cancel(subscription_id=subscription.stripe_subscription_id)
        elif subscription.status == SS.CHECKOUT and subscription.checkout_session_id:
            if stripe_gateway.checkout_session_expire(session_id=subscription.checkout_session_id) == "complete":
                raise AccountClosureRefused("A payment has just arrived for this account; try again in a minute.")
    now = timezone.now()
    with transaction.atomic():
        closure = closure_open(
            user_id=customer.pk,
            actor=actor,
            via=via,
            retention_days=closure_retention_days(customer),
            reason=reason.strip(),
            request=request,
        )
        for subscription in subscriptions:
            _subscription_end(subscription, actor=actor, now=now)
        closure_advance(closure_id=closure.pk, now=now)
        context = {"retention_days": closure.retention_days, "via": via}
        email = customer.email
        transaction.on_commit(lambda: email_send(template="account_closing", to=[email], context=context))
    return closure


def _closing_allowed(*, customer: User, actor: User, password: str, request) -> str:
    """Who may close this account, checked before anything changes; returns how it was asked (`via`)."""
    if actor.pk == customer.pk:
        if not password or not customer.check_password(password):
            audit_record(
                event="account_close_refused", request=request, actor=actor, customer=customer.pk, reason="password"
            )
            raise ClosurePasswordWrong("That password is not right. Nothing was changed.")
        return AccountClosure.Via.CUSTOMER
    if not (actor.is_staff and actor.is_active and actor.has_perm(CLOSE_PERMISSION)):
        audit_record(
            event="account_close_refused", request=request, actor=actor, customer=customer.pk, reason="permission"
        )
        raise PermissionDenied("Closing a customer's account needs the “close customer account” permission.")
    return AccountClosure.Via.STAFF


def _subscription_end(subscription: Subscription, *, actor: User, now) -> None:
    """Stripe has stopped charging (account_close canceled it): the subscription is canceled here too, with
    its teardown due now, so billing's own jobs treat its stores as the closure does."""
    if subscription.status in CHARGING:
        try:
            subscription_transition(
                subscription_id=subscription.pk,
                to=SS.CANCELED,
                actor=actor,
                note="canceled: the customer's account is closing",
                canceled_at=now,
                teardown_at=now,
            )
        except InvalidTransition:
            # Stripe's customer.subscription.deleted webhook got here first: the outcome is the same.
            if Subscription.objects.get(pk=subscription.pk).status != SS.CANCELED:
                raise
    elif subscription.status == SS.CHECKOUT:
        subscription_transition(
            subscription_id=subscription.pk, to=SS.ABANDONED, actor=actor, note="the customer's account is closing"
        )


def closure_advance(*, closure_id: int, now=None) -> str:
    """One step of a closing account: each store that went live gets its final backup, and each store whose
    final backup is safe (or that never went live) is torn down; once every store is deleted the account is
    closed, to be purged after its retention. Returns the closure's status afterwards."""
    now = now or timezone.now()
    closure = AccountClosure.objects.get(pk=closure_id)
    if closure.status != CS.CLOSING:
        return closure.status
    remaining = Store.objects.filter(customer_id=closure.user_id).exclude(status=Store.Status.DELETED).order_by("pk")
    for store in remaining:
        if store.status == Store.Status.DELETING or store_operation_active(store_id=store.pk):
            continue  # its teardown, its final backup or another operation is under way: next run
        if not store_has_final_backup(store):
            # Never torn down before its data is safe. A store that is busy is asked again next run.
            final_backup_request(store_id=store.pk)
            continue
        try:
            job_enqueue(store_id=store.pk, kind=Job.Kind.TEARDOWN)
        except (JobConflict, InvalidTransition) as exc:
            logger.info("closing account %s: store %s not torn down yet: %s", closure.user_id, store.pk, exc)
    if remaining.exists():
        return CS.CLOSING
    closure = closure_mark_closed(
        closure_id=closure.pk, now=now, purge_after=now + timedelta(days=closure.retention_days)
    )
    return closure.status


def account_purge(*, closure_id: int, now=None) -> AccountClosure:
    """After the retention: the stores' snapshots are forgotten (restic) and the customer is deleted in Stripe
    (stripe_gateway; Stripe keeps the invoices), both outside any transaction and tried again next run if
    either fails. Then, in one transaction, the customer's tickets (with their attachments), consultation
    requests and contact messages are deleted, their stores' names and credentials and Stripe's mirrored
    personal fields are emptied, and accounts anonymises the customer and redacts the audit rows. Invoices
    and subscription records stay (with no personal fields) for the accounts."""
    now = now or timezone.now()
    closure = AccountClosure.objects.select_related("user").get(pk=closure_id)
    if closure.status != CS.CLOSED or closure.purge_after > now:
        raise InvalidTransition(f"account {closure.user_id} is not due for its purge")
    customer = closure.user
    store_ids = list(Store.objects.filter(customer=customer).values_list("pk", flat=True))
    kept = BackupRun.objects.filter(store_id__in=store_ids, forgotten_at__isnull=True).exclude(snapshot_id="")
    for store_id in sorted(set(kept.values_list("store_id", flat=True))):
        store_snapshots_forget(store_id=store_id)  # a repository that fails raises: the purge waits
    for stripe_customer_id in _stripe_customer_ids(customer):
        stripe_gateway.customer_delete(customer_id=stripe_customer_id)  # Stripe keeps the invoices
    placeholder = closed_account_placeholder(customer.pk)
    with transaction.atomic():
        attachments = list(
            TicketAttachment.objects.filter(message__ticket__customer=customer).values_list("stored_name", flat=True)
        )
        Ticket.objects.filter(customer=customer).delete()
        ConsultationRequest.objects.filter(email__iexact=customer.email).delete()
        ContactMessage.objects.filter(email__iexact=customer.email).delete()
        for store_id in store_ids:
            Store.objects.filter(pk=store_id).update(
                site_title=placeholder,
                domain=f"{placeholder}-store-{store_id}.invalid",
                credentials_encrypted="",
                status_message="",
            )
        _stripe_mirror_redact(customer)
        closure = account_personal_data_erase(closure_id=closure.pk, now=now)
        transaction.on_commit(lambda: _attachments_remove(attachments))
    return closure


def _stripe_customer_ids(customer: User) -> list[str]:
    return sorted(
        set(
            Subscription.objects.filter(customer=customer)
            .exclude(stripe_customer_id="")
            .values_list("stripe_customer_id", flat=True)
        )
    )


def _stripe_mirror_redact(customer: User) -> None:
    """Empty the personal fields of the customer's objects in dj-stripe's mirror (the customer itself was
    deleted in Stripe just before); the invoices stay, with their amounts."""
    stripe_ids = _stripe_customer_ids(customer)
    for mirrored in MirroredCustomer.objects.filter(id__in=stripe_ids):
        mirrored.email = ""
        mirrored.stripe_data = {**mirrored.stripe_data, **dict.fromkeys(STRIPE_PERSONAL_FIELDS)}
        mirrored.save(update_fields=["email", "stripe_data"])
    for invoice in MirroredInvoice.objects.filter(customer__id__in=stripe_ids):
        invoice.stripe_data = {**invoice.stripe_data, **dict.fromkeys(STRIPE_INVOICE_PERSONAL_FIELDS)}
        invoice.save(update_fields=["stripe_data"])


def _attachments_remove(stored_names: list[str]) -> None:
    for stored_name in stored_names:
        attachment_path(stored_name).unlink(missing_ok=True)


def account_closures_advance(*, now=None) -> dict[str, list[int]]:
    """The periodic job: every closing account one step further, and every closed account past its
    retention purged. One account that fails is logged and tried again next run; the others go on."""
    now = now or timezone.now()
    done: dict[str, list[int]] = {"closed": [], "purged": []}
    for closure_id in AccountClosure.objects.filter(status=CS.CLOSING).values_list("pk", flat=True):
        try:
            status = closure_advance(closure_id=closure_id, now=now)
        except Exception:
            logger.exception("account closure %s: not advanced; tried again next run", closure_id)
            continue
        if status == CS.CLOSED:
            done["closed"].append(closure_id)
    due = AccountClosure.objects.filter(status=CS.CLOSED, purge_after__lte=now).values_list("pk", flat=True)
    for closure_id in due:
        try:
            account_purge(closure_id=closure_id, now=now)
        except Exception:
            logger.exception("account closure %s: purge failed; tried again next run", closure_id)
            continue
        done["purged"].append(closure_id)
    return done
