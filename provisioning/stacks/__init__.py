"""Stack specs: which containers a store runs, with their images, limits, volumes and healthchecks."""

from decimal import Decimal

from provisioning.stacks import magento, woocommerce
from provisioning.stacks.base import ServiceSpec, StackSpec


def stack_for(store) -> StackSpec:
    return {"woocommerce": woocommerce.WooCommerceStack, "magento": magento.MagentoStack}[store.platform](store)


def stack_reservation(store) -> tuple[int, Decimal]:
    """Memory (MB) and CPU that the store's whole stack reserves on its host (stores places stores by it)."""
    services = stack_for(store).services(include_optional=store.phpmyadmin_enabled)
    return sum(s.memory_mb for s in services), sum((Decimal(str(s.cpus)) for s in services), Decimal(0))


__all__ = ["ServiceSpec", "StackSpec", "stack_for", "stack_reservation"]
