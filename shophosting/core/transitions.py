"""The one way a status field changes: lock the row, check the edge, write, record an event.

Every app's `<entity>_transition` service is a thin wrapper around `transition()`, with its own table of
allowed edges and its own event table built on `StatusEvent`. This module sits at the bottom layer: it
imports Django only, never a project app, so every app may import it.
"""

from collections.abc import Callable, Mapping

from django.conf import settings
from django.db import models, transaction


class InvalidTransition(Exception):
    """A status change that the entity's table of allowed edges does not allow."""


class StatusEvent(models.Model):
    """One row per status change (or, with old == new, per notable fact) of one entity. Each app keeps its
    own table, with a foreign key to its entity, so the admin can show the events inline."""

    created_at = models.DateTimeField(auto_now_add=True)
    old_status = models.CharField(max_length=20, blank=True)
    new_status = models.CharField(max_length=20)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    note = models.TextField(blank=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.old_status or '∅'} → {self.new_status}"


def transition(
    model: type[models.Model],
    pk,
    to: str,
    *,
    allowed_from: Mapping[str, set[str]],
    event_model: type[StatusEvent] | None,
    event_link: str = "",
    actor=None,
    note: str = "",
    event_fields: Mapping | None = None,
    same_is_noop: bool = False,
    refusal: Callable[[models.Model, str], str] | None = None,
    on_change: Callable[[models.Model, str], None] | None = None,
    **fields,
):
    """Change `model` row `pk`'s `status` to `to` and return the row.

    Under the row's lock (inside the caller's transaction if there is one): refuses with InvalidTransition,
    writing nothing, unless the current status is in `allowed_from[to]`; then writes the status, the extra
    `fields` and `updated_at` (if the model has one), and creates `event_model(<event_link>=row, old_status,
    new_status, actor, note, **event_fields)`. `same_is_noop` returns the row untouched when it already has
    the status; `refusal(row, to)` words the refusal for the person asking; `on_change(row, old)` runs last,
    under the same lock (e.g. an audit record)."""
    with transaction.atomic():
        row = model.objects.select_for_update().get(pk=pk)
        old = row.status
        if same_is_noop and old == to:
            return row
        if old not in allowed_from.get(to, ()):
            default = f"{model._meta.model_name} {row.pk}: {old} -> {to} is not allowed"
            raise InvalidTransition(refusal(row, to) if refusal else default)
        row.status = to
        for name, value in fields.items():
            setattr(row, name, value)
        update_fields = ["status", *fields]
        if any(field.name == "updated_at" for field in model._meta.concrete_fields):
            update_fields.append("updated_at")
        row.save(update_fields=update_fields)
        if event_model is not None:
            event_model.objects.create(
                **{event_link: row},
                old_status=old,
                new_status=to,
                actor=actor,
                note=note,
                **(event_fields or {}),
            )
        if on_change is not None:
            on_change(row, old)
        return row
