"""Which image each store runs, per role (provisioning.models.StoreImage; the stacks read it through
StackSpec.image). Recorded when the store is placed, from the settings' STORE_IMAGES of that day, so a new
default reaches new stores only; an update changes one store's record (provisioning.updates)."""

from django.db import transaction

from provisioning.models import StoreImage
from provisioning.stacks import stack_for
from stores.models import Store


@transaction.atomic
def store_images_record(*, store_id: int) -> dict[str, str]:
    """Record the settings' image for every role of the store's stack that has none recorded yet (a retry
    keeps what the first attempt recorded); returns role -> image, as the store runs them."""
    store = Store.objects.get(pk=store_id)
    stack = stack_for(store)
    recorded = dict(StoreImage.objects.filter(store_id=store_id).values_list("role", "image"))
    for service in stack.services(include_optional=True):
        if service.role not in recorded:
            recorded[service.role] = stack.default_image(service.role)
            StoreImage.objects.create(store_id=store_id, role=service.role, image=recorded[service.role])
    return recorded


def store_image_set(*, store_id: int, role: str, image: str) -> None:
    """The image the store's `role` is (re)created from from now on."""
    StoreImage.objects.update_or_create(store_id=store_id, role=role, defaults={"image": image})
