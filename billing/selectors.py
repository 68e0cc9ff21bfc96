from django.db.models import QuerySet

from billing.models import Plan


def plan_list_public() -> QuerySet[Plan]:
    return Plan.objects.filter(active=True).order_by("platform", "display_order", "price_monthly")
