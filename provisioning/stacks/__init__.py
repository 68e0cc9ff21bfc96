"""Stack specs: which containers a store runs, with their images, limits, volumes and healthchecks."""

from provisioning.stacks.base import ServiceSpec, StackSpec


def stack_for(store) -> StackSpec:
    from provisioning.stacks import magento, woocommerce

    return {"woocommerce": woocommerce.WooCommerceStack, "magento": magento.MagentoStack}[store.platform](store)


__all__ = ["ServiceSpec", "StackSpec", "stack_for"]
