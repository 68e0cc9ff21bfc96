"""Which image each store runs, per role (provisioning.models.StoreImage; the stacks read it through
StackSpec.image). Recorded when the store is placed, from the settings' STORE_IMAGES of that day, so a new
default reaches new stores only; an update changes one store's record (provisioning.updates)."""

from django.db import transaction

from provisioning.models import StoreImage
from provisioning.stacks import stack_for
from stores.models import Store


@transaction.atomic
def store_images_record(*, store_id: int) -> dict[str, str]:
    """Record the settings' image for every role of the store's stack; returns role -> image, as the store
    runs them. Called by provisioning's allocate step only, so only for a store that has never been live (a
    provision, or the retry of a failed one): it takes the defaults of the day, replacing what a failed
    attempt recorded, so a retry after staff fixed a bad image setting starts from the fixed one. A live
    store's images change through updates only (store_image_set)."""
    store = Store.objects.get(pk=store_id)
    stack = stack_for(store)
    recorded = {}
    for service in stack.services(include_optional=True):
        recorded[service.role] = stack.default_image(service.role)
        StoreImage.objects.update_or_create(
            store_id=store_id, role=service.role, defaults={"image": recorded[service.role]}
        )
    return recorded


def store_image_set(*, store_id: int, role: str, image: str) -> None:
    """The image the store's `role` is (re)created from from now on."""
    StoreImage.objects.update_or_create(store_id=store_id, role=role, defaults={"image": image})
