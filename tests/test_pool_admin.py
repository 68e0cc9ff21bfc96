"""The warm pool's records and staff pages, without an engine (tests/test_pool.py runs the pool for real)."""

import pytest
from django.urls import reverse

from provisioning.models import PoolStack, PoolTarget
from stores.models import Host
from stores.selectors import store_list_for_customer
from stores.services import store_create, store_pooled_create

pytestmark = pytest.mark.django_db


def test_staff_see_the_pool_and_its_size_where_customers_see_nothing(client, staff_user, woo_plan, user_factory):
    """Records only (no engine): a pool stack's row belongs to no customer, and the staff pages that list
    stores, the pool's stacks and its targets all render it."""
    PoolTarget.objects.create(
        platform=woo_plan.platform, memory_mb=woo_plan.memory_mb, cpus=woo_plan.cpu_limit, ready_target=3
    )
    pooled = store_pooled_create(plan=woo_plan, key="pool-test")
    PoolStack.objects.create(
        store=pooled,
        platform=woo_plan.platform,
        memory_mb=woo_plan.memory_mb,
        cpus=woo_plan.cpu_limit,
        host=Host.objects.get(name="local"),
    )
    customer = user_factory()
    store_create(customer=customer, plan=woo_plan, domain="mine.test")
    assert [s.domain for s in store_list_for_customer(customer)] == ["mine.test"]
    assert pooled.customer is None

    client.force_login(staff_user)
    for url in (
        reverse("admin:stores_store_changelist"),
        reverse("admin:stores_store_change", args=[pooled.pk]),
        reverse("admin:provisioning_poolstack_changelist"),
    ):
        assert client.get(url).status_code == 200, url

    # The store list shows customers' stores unless staff ask for the pool's (or all).
    def listed(**query) -> set[str]:
        response = client.get(reverse("admin:stores_store_changelist"), query)
        return {store.domain for store in response.context["cl"].result_list}

    assert listed() == {"mine.test"}
    assert listed(pool="stacks") == {pooled.domain}
    assert listed(pool="all") == {"mine.test", pooled.domain}
    targets = client.get(reverse("admin:provisioning_pooltarget_changelist")).content.decode().lower()
    assert "ready now" in targets and "building" in targets
    assert '<td class="field-building">1</td>' in targets and '<td class="field-ready">0</td>' in targets
    refused = client.post(
        reverse("admin:provisioning_pooltarget_add"),
        {"platform": "magento", "memory_mb": 2048, "cpus": "1.00", "ready_target": 1},
    )
    assert "cannot be kept warm yet" in refused.content.decode()
