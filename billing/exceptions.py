from billing import stripe_gateway


class BillingRefused(Exception):
    """A request that billing will not carry out; the message says why, in words for the person asking."""


# What a Stripe-backed request can fail with; each has a message fit to show the person asking.
BILLING_FAILURES = (BillingRefused, stripe_gateway.StripeFailure, stripe_gateway.StripeNotConfigured)
