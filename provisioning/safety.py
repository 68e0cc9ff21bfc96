"""A store's safety net before a risky change (an update): a snapshot taken first, and the data put back from
it if the change fails.

Backups provides it (BackupsConfig.ready() registers its backup and restore services, the same ones the
`restore` kind uses for its pre-restore backup), so the pre-update backup is an ordinary backup in the
merchant's list, labelled as taken before an update. Provisioning sits below backups and imports none of
it: the update kind calls these two functions only.

Both run inside the update job's steps, in the worker, outside any transaction (they call restic and the
engine), while the job holds the store."""

from collections.abc import Callable
from dataclasses import dataclass

from provisioning.exceptions import ProvisioningError
from provisioning.kinds import Log


@dataclass(frozen=True)
class SnapshotProvider:
    # take(store_id=, job_id=, reason=, log=) -> a reference to the snapshot (what `restore` is given back).
    # Raises when the snapshot could not be taken: nothing was changed then, and the change must not start.
    take: Callable[..., str]
    # restore(store_id=, reference=, log=): the store's database and files become the snapshot's. The app's
    # containers are stopped; the data services run.
    restore: Callable[..., None]


_provider: SnapshotProvider | None = None


def snapshot_provider_register(*, take: Callable[..., str], restore: Callable[..., None]) -> None:
    """Called from an app's AppConfig.ready(); registering again replaces the provider."""
    global _provider
    _provider = SnapshotProvider(take=take, restore=restore)


def _registered() -> SnapshotProvider:
    if _provider is None:
        raise ProvisioningError("no snapshot provider is registered (the backups app), so nothing is changed")
    return _provider


def snapshot_take(*, store_id: int, job_id: int, reason: str, log: Log) -> str:
    return _registered().take(store_id=store_id, job_id=job_id, reason=reason, log=log)


def snapshot_restore(*, store_id: int, reference: str, log: Log) -> None:
    _registered().restore(store_id=store_id, reference=reference, log=log)
