"""django-rq entry points for billing's periodic work; each calls one service."""

from billing.services import checkout, closure, dunning, enforcement


def dunning_enforce():
    return dunning.dunning_enforce()


def subscriptions_teardown_due():
    return enforcement.subscriptions_teardown_due()


def checkouts_abandoned_cleanup():
    return checkout.checkouts_abandoned_cleanup()


def stores_billing_enforce():
    return enforcement.stores_billing_enforce()


def account_closures_advance():
    return closure.account_closures_advance()
