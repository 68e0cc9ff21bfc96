"""The audit trail as the shared helpers see it. accounts owns the trail (AuditEvent rows and security.log)
and plugs its writer in from AccountsConfig.ready(); the helpers here record events through `audit` without
importing an app, so they stay below every app."""

from collections.abc import Callable

from django.http import HttpRequest

# audit_record(*, event, request=None, actor=None, **detail), as accounts.services defines it.
AuditWriter = Callable[..., object]
_writer: AuditWriter | None = None


def audit_writer_set(writer: AuditWriter) -> None:
    global _writer
    _writer = writer


def audit(*, event: str, request: HttpRequest | None = None, **detail) -> None:
    if _writer is None:
        # Only before the app registry is ready; a security event must not vanish silently.
        raise RuntimeError(f"no audit writer is set (accounts is not ready) for the event {event!r}")
    _writer(event=event, request=request, **detail)
