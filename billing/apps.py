from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self):
        # Connects the Stripe webhook handlers to dj-stripe's event signals.
        from billing import webhooks  # noqa: F401

        # Tells the ticket desk how soon each customer's tickets are owed a first answer, by their plans
        # (consultations sits below billing and cannot ask: consultations/response_targets.py).
        from billing.selectors import customer_first_response_target
        from consultations.response_targets import first_response_target_source_set

        first_response_target_source_set(customer_first_response_target)

        # The customer's dashboard offers "Add a store" by subscription: their writes make it stale.
        from billing.models import Subscription
        from shophosting.core.customer_pages import customer_pages_track

        customer_pages_track(Subscription)
