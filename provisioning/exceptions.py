from stores.exceptions import StoreBusy


class ProvisioningError(Exception):
    """A provisioning step failed; the message is shown to staff."""


class DockerUnavailable(ProvisioningError):
    """The Docker engine does not answer; provisioning cannot run at all."""


class JobConflict(ProvisioningError, StoreBusy):
    """Another operation on the store is active (a job, a backup, a restore): stores.operations said so."""


class HostCheckFailed(ProvisioningError):
    """A host's engine failed its check (unreachable, refused our certificates, cannot enforce limits, its
    private address is not its own or not reachable from here); the message says which, for staff."""
