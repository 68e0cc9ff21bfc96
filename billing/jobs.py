"""django-rq entry points for billing's periodic work; each calls one service."""

from billing import services


def dunning_enforce():
    return services.dunning_enforce()


def subscriptions_teardown_due():
    return services.subscriptions_teardown_due()


def checkouts_abandoned_cleanup():
    return services.checkouts_abandoned_cleanup()


def stores_billing_enforce():
    return services.stores_billing_enforce()
