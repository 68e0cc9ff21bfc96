"""Which image versions each host holds (HostImage), and giving a host the images a new store needs.

Images reach hosts from the platform's engine through the Docker API (`docker save | docker load`, no
registry): `manage.py images_build` builds on the platform's engine, `manage.py host_images_copy <host>` and
the provision's allocate step copy to a host what it lacks. The records are refreshed by one image list per
host: after the host check, `host_images_copy` and `images_build` (the platform's engine), and in the
platform round every minute. Pages and rollouts read the records instead of asking each engine.

"Current" for a host means: every store image of the settings of the day (STORE_IMAGES) is there with the
image id the platform's engine has for it (when the platform's engine is recorded; else, that it is there).
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning import docker_client
from provisioning.exceptions import ProvisioningError
from provisioning.models import HostImage, StoreImage
from stores.models import Host

logger = logging.getLogger(__name__)


def store_images_wanted() -> list[str]:
    """The store images of the settings of the day, every platform and role."""
    return sorted({image for roles in settings.STORE_IMAGES.values() for image in roles.values()})


def _repositories_tracked() -> set[str]:
    """The repositories of the store images: those of the defaults of the day and of every image a store runs.
    Every tag of them is recorded, so a version built for a rollout (shophosting/wordpress-official:6.5) is
    known before any store runs it."""
    references = set(store_images_wanted()) | set(StoreImage.objects.values_list("image", flat=True).distinct())
    return {_repository(reference) for reference in references}


def _repository(reference: str) -> str:
    name, _, tag = reference.rpartition(":")
    return name if name and "/" not in tag else reference


def hosts_holding(*, reference: str, hosts: Iterable[Host]) -> set[int]:
    """The hosts among `hosts` recorded as holding `reference` (one query; no engine is asked)."""
    ids = [host.pk for host in hosts]
    return set(HostImage.objects.filter(host_id__in=ids, reference=reference).values_list("host_id", flat=True))


def platform_host() -> Host | None:
    """The host row of the platform's own engine (the one images are built on), if it is registered."""
    return Host.objects.filter(docker_url=settings.DOCKER_HOST).order_by("pk").first()


@transaction.atomic
def host_images_record(*, host_id: int, images: Iterable[docker_client.ImageTagged]) -> int:
    """Replace what is recorded for the host with `images` (every tag of the store images' repositories among
    them); returns how many."""
    tracked = _repositories_tracked()
    now = timezone.now()
    seen = {image.reference: image for image in images if _repository(image.reference) in tracked}
    HostImage.objects.filter(host_id=host_id).exclude(reference__in=list(seen)).delete()
    known = dict(HostImage.objects.filter(host_id=host_id).values_list("reference", "image_id"))
    # The platform round records every host every minute: what did not change costs one UPDATE in all.
    unchanged = [reference for reference, image in seen.items() if known.get(reference) == image.image_id]
    HostImage.objects.filter(host_id=host_id, reference__in=unchanged).update(recorded_at=now)
    for reference, image in seen.items():
        if reference in unchanged:
            continue
        HostImage.objects.update_or_create(
            host_id=host_id,
            reference=reference,
            defaults={
                "image_id": image.image_id,
                "created": datetime.fromtimestamp(image.created, tz=UTC) if image.created else None,
                "recorded_at": now,
            },
        )
    return len(seen)


def host_images_refresh(*, host: Host) -> int:
    """Ask the host's engine for its images (one call) and record them. Raises ProvisioningError when the
    engine does not answer; the records then stay as last seen."""
    return host_images_record(host_id=host.pk, images=docker_client.image_list(base_url=host.engine))


def platform_images_refresh(*, log: Callable[[str], None] = print) -> None:
    """Record the platform engine's images after a build (manage.py images_build), when its host is registered."""
    host = platform_host()
    if host is None:
        log("the platform's engine is not a registered host: its images are not recorded")
        return
    log(f"recorded {host_images_refresh(host=host)} store image(s) of host {host.name}")


def hosts_images_refresh(*, host_ids: Iterable[int]) -> list[int]:
    """The platform round's refresh of the hosts whose engine answered; a host that fails now is logged and
    refreshed next round. Returns the hosts refreshed."""
    refreshed = []
    for host in Host.objects.filter(pk__in=list(host_ids)):
        try:
            host_images_refresh(host=host)
        except ProvisioningError as exc:
            logger.warning("the images of host %s were not refreshed: %s", host.name, exc)
            continue
        refreshed.append(host.pk)
    return refreshed


@dataclass(frozen=True)
class HostImagesState:
    current: bool
    missing: list[str]  # not on the host at all
    outdated: list[str]  # there, but not the platform's image of that name
    recorded_at: datetime | None

    def __str__(self):
        if self.recorded_at is None:
            return "not recorded yet"
        if self.current:
            return "yes"
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(self.missing))
        if self.outdated:
            parts.append("older than the platform's: " + ", ".join(self.outdated))
        return "no: " + "; ".join(parts)


def hosts_images_state(hosts: Iterable[Host]) -> dict[int, HostImagesState]:
    """Whether each host holds the current store images, from the records (one query for all hosts)."""
    hosts = list(hosts)
    wanted = store_images_wanted()
    platform = platform_host()
    ids = [host.pk for host in hosts] + ([platform.pk] if platform else [])
    recorded: dict[int, dict[str, tuple[str, datetime]]] = {}
    for host_id, reference, image_id, recorded_at in HostImage.objects.filter(
        host_id__in=ids, reference__in=wanted
    ).values_list("host_id", "reference", "image_id", "recorded_at"):
        recorded.setdefault(host_id, {})[reference] = (image_id, recorded_at)
    platform_ids = {ref: image_id for ref, (image_id, _) in recorded.get(platform.pk, {}).items()} if platform else {}
    states = {}
    for host in hosts:
        found = recorded.get(host.pk, {})
        # A host needs what the platform's engine holds (what can be copied to it); the platform's own row,
        # or any host while the platform is not recorded, needs every store image of the settings.
        needed = (
            wanted if not platform_ids or host.pk == platform.pk else [ref for ref in wanted if ref in platform_ids]
        )
        missing = [ref for ref in needed if ref not in found]
        outdated = [
            ref for ref in needed if ref in found and ref in platform_ids and found[ref][0] != platform_ids[ref]
        ]
        last = max((at for _, at in found.values()), default=None)
        states[host.pk] = HostImagesState(
            current=last is not None and not missing and not outdated,
            missing=missing,
            outdated=outdated,
            recorded_at=last,
        )
    return states


def host_images_ensure(*, host: Host, images: Iterable[str], log: Callable[[str], None]) -> list[str]:
    """Give the host every image in `images` that it lacks, copied from the platform's engine (the provision's
    allocate step, before any container: a new store never waits for staff to copy images). Nothing to do
    on the platform's own engine. Raises ProvisioningError naming the image the platform's engine lacks.
    Returns the images copied; the host's records are refreshed when any was."""
    if host.docker_url == settings.DOCKER_HOST:
        return []
    copied = [
        image for image in sorted(set(images)) if docker_client.image_copy(image=image, source=None, target=host.engine)
    ]
    if copied:
        log(f"copied to host {host.name}: {', '.join(copied)}")
        try:
            host_images_refresh(host=host)
        except ProvisioningError as exc:  # the copy stands; the platform round records it
            log(f"the images of host {host.name} were not recorded: {exc}")
    return copied
