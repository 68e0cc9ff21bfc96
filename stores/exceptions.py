class InvalidTransition(Exception):
    """A status change that the store's state machine does not allow."""


class NoCapacity(Exception):
    """No active host has the memory, CPU and a free port for this store."""
