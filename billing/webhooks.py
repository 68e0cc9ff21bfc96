"""Stripe webhook handlers. dj-stripe verifies the signature, stores each Event once (so a redelivered
event never reaches these twice) and syncs its mirror; each handler here passes the event's object to
one billing service, with the event's `created` time where the order of events matters (Stripe does not
deliver in order). Events not listed are stored by dj-stripe and otherwise ignored."""

from djstripe.event_handlers import djstripe_receiver

from billing.services import stripe_events


@djstripe_receiver("checkout.session.completed")
def on_checkout_session_completed(sender, event, **kwargs):
    stripe_events.checkout_completed(
        session=event.data["object"], stripe_event_id=event.id, event_created=event.created
    )


@djstripe_receiver("checkout.session.async_payment_succeeded")
def on_checkout_async_payment_succeeded(sender, event, **kwargs):
    stripe_events.checkout_async_payment_succeeded(
        session=event.data["object"], stripe_event_id=event.id, event_created=event.created
    )


@djstripe_receiver("checkout.session.async_payment_failed")
def on_checkout_async_payment_failed(sender, event, **kwargs):
    stripe_events.checkout_async_payment_failed(
        session=event.data["object"], stripe_event_id=event.id, event_created=event.created
    )


@djstripe_receiver("invoice.paid")
def on_invoice_paid(sender, event, **kwargs):
    stripe_events.invoice_paid(invoice=event.data["object"], stripe_event_id=event.id, event_created=event.created)


@djstripe_receiver("invoice.payment_failed")
def on_invoice_payment_failed(sender, event, **kwargs):
    stripe_events.invoice_payment_failed(
        invoice=event.data["object"], stripe_event_id=event.id, event_created=event.created
    )


@djstripe_receiver("customer.subscription.updated")
def on_subscription_updated(sender, event, **kwargs):
    stripe_events.subscription_updated(
        stripe_subscription=event.data["object"],
        stripe_event_id=event.id,
        previous=event.data.get("previous_attributes"),
    )


@djstripe_receiver("customer.subscription.deleted")
def on_subscription_deleted(sender, event, **kwargs):
    stripe_events.subscription_deleted(stripe_subscription=event.data["object"], stripe_event_id=event.id)
