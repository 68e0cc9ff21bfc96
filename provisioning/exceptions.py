class ProvisioningError(Exception):
    """A provisioning step failed; the message is shown to staff."""


class DockerUnavailable(ProvisioningError):
    """The Docker engine does not answer; provisioning cannot run at all."""


class JobConflict(ProvisioningError):
    """The store already has an active job."""
