from shophosting.core.transitions import InvalidTransition

__all__ = ["InvalidTransition", "NoCapacity", "StoreBusy"]  # InvalidTransition: the one shared class, re-exported


class NoCapacity(Exception):
    """No active host has the memory, CPU and a free port for this store."""


class StoreBusy(Exception):
    """Another operation on this store (a job, a backup, a restore, a verification) is active; the message
    says which, in words fit for the customer."""
