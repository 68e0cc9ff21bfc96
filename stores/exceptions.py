class InvalidTransition(Exception):
    """A status change that the store's state machine does not allow."""


class NoCapacity(Exception):
    """No active host has the memory, CPU and a free port for this store."""


class StoreBusy(Exception):
    """Another operation on this store (a job, a backup, a restore, a verification) is active; the message
    says which, in words fit for the customer."""
