"""Stack specs: which containers a store runs, with their images, limits, volumes and healthchecks."""

from decimal import Decimal

from provisioning.stacks import magento, woocommerce
from provisioning.stacks.base import ServiceSpec, StackSpec


def stack_for(store) -> StackSpec:
    return {"woocommerce": woocommerce.WooCommerceStack, "magento": magento.MagentoStack}[store.platform](store)


def stack_reservation(store) -> tuple[int, Decimal]:
    """Memory (MB) and CPU that the store's whole stack reserves on its host (stores places stores by it)."""
    # What a stack reserves follows from its platform, plan and optional services only. An unsaved twin of the
    # store builds the same services without reading its recorded images and names (two queries per store),
    # so the staff index and placement count a host's stores in one query.
    from stores.models import Store  # the stacks are imported by the models' app loading

    twin = Store(
        platform=store.platform,
        plan=store.plan,
        phpmyadmin_enabled=store.phpmyadmin_enabled,
        domain=store.domain,
        status=store.status,
        staging_of_id=store.staging_of_id,
        stack_key=store.stack_key,
        tls_status=store.tls_status,
    )
    services = stack_for(twin).services(include_optional=store.phpmyadmin_enabled)
    return sum(s.memory_mb for s in services), sum((Decimal(str(s.cpus)) for s in services), Decimal(0))


__all__ = ["ServiceSpec", "StackSpec", "stack_for", "stack_reservation"]
