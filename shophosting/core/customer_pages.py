"""What a customer's own pages show, cached per customer and dropped the moment a row they show changes.

The customer dashboard (shophosting/portal.py) reads the customer's stores, their last good backups and the
subscriptions with room for another store: a few queries on every view for figures that change a few times a
day. `customer_page_cached(customer, name, compute)` keeps `compute()`'s result in Redis, stamped with the
customer's *version*. Every write to a row such a page shows gives that customer a new version, so the next
view computes afresh:

- a model takes part by declaring `customer_pages_path` (how its rows reach their customer: "customer_id",
  or "store__customer_id" one relation away) and using `CustomerPagesQuerySet` as its manager;
- saves and deletions of single rows are seen by signals (`customer_pages_track(model)`, from its app's
  ready()), and the customer a row had when it was loaded is bumped too, so a row that moves to another
  customer leaves the first one's pages at once;
- the queryset's update(), delete(), bulk_create() and bulk_update(), which send no signals, bump every
  customer of the rows they touch.

The new version is written at once and again when the transaction commits: a view that read the rows before
the commit stored its result under a version that no later view accepts. A page written before a change is therefore
never served after it. Entries live CUSTOMER_PAGE_CACHE_SECONDS at most (also what bounds a change made
outside the ORM, e.g. by hand in SQL); 0 turns the cache off. Redis down: computed on the spot.

Each entry belongs to one customer (its id and the account's creation time) and holds only what `compute()`
read for that customer: one merchant's entry is never looked up for another.
"""

import logging
import uuid
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import models, transaction
from django.db.models.signals import post_delete, post_init, post_save

logger = logging.getLogger(__name__)

VERSION_KEY = "customerpages:version:{}"
ENTRY_KEY = "customerpages:entry:{}:{}"


def customer_pages_changed(customer_ids: Iterable[int | None]) -> None:
    """These customers' cached pages are stale: now, and again once the current transaction commits (a view
    between the two may have stored what it read before the commit)."""
    ids = {int(pk) for pk in customer_ids if pk is not None}
    if not ids or settings.CUSTOMER_PAGE_CACHE_SECONDS <= 0:
        return

    def bump() -> None:
        try:
            cache.set_many({VERSION_KEY.format(pk): uuid.uuid4().hex for pk in ids}, timeout=None)
        except Exception:  # noqa: BLE001 - a write must not fail because the cache is down
            logger.exception("the cached pages of customers %s could not be marked stale", sorted(ids))

    if transaction.get_connection().in_atomic_block:
        bump()
    transaction.on_commit(bump)


def customer_page_cached(customer, name: str, compute: Callable[[], object], *, also: str = ""):
    """`compute()` for this customer, from the cache while none of the rows it shows changed. `also` names a
    cache key whose value must not have changed either (the marketing cache's generation, which moves when
    plans change: a plan's name and store limit are shown)."""
    seconds = settings.CUSTOMER_PAGE_CACHE_SECONDS
    if seconds <= 0:
        return compute()
    version_key = VERSION_KEY.format(customer.pk)
    # The account's creation time too: an id used again (a database restored to an earlier day) is another
    # merchant, who must never be shown an entry made for the first.
    entry_key = ENTRY_KEY.format(name, f"{customer.pk}:{customer.date_joined.timestamp()}")
    keys = [version_key, entry_key, *([also] if also else [])]
    try:
        found = cache.get_many(keys)
        version = found.get(version_key)
        if version is None:
            # Never "no version": an entry stored under it before the key went (evicted) could be stale.
            cache.add(version_key, uuid.uuid4().hex, timeout=None)
            version = cache.get(version_key)
    except Exception:  # noqa: BLE001 - Redis down: computed on the spot
        return compute()
    stamp = (version, found.get(also) if also else None)
    entry = found.get(entry_key)
    if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == stamp:
        return entry[1]
    value = compute()
    try:
        cache.set(entry_key, (stamp, value), timeout=seconds)
    except Exception:  # noqa: BLE001 - the next view computes it again
        logger.warning("the page %s of customer %s could not be cached", name, customer.pk, exc_info=True)
    return value


def _customers_of(model, rows: models.QuerySet) -> set:
    rows = rows.order_by()
    rows.query.select_for_update = False  # a plain read of who they belong to; the write itself locks
    return set(rows.values_list(model.customer_pages_path, flat=True).distinct())


class CustomerPagesQuerySet(models.QuerySet):
    """A QuerySet whose bulk writes mark the pages of the customers they touch stale (see the module)."""

    def update(self, **kwargs):
        customers = _customers_of(self.model, self)
        moved_to = kwargs.get("customer", kwargs.get("customer_id"))
        moved_to = moved_to.pk if isinstance(moved_to, models.Model) else moved_to
        # Given to a customer by an expression: whoever the same rows belong to afterwards.
        moved_rows = None if moved_to is None or isinstance(moved_to, int) else list(self.values_list("pk", flat=True))
        rows = super().update(**kwargs)
        if moved_rows is not None:
            customers |= _customers_of(self.model, self.model._default_manager.filter(pk__in=moved_rows))
        elif moved_to is not None:
            customers.add(moved_to)
        customer_pages_changed(customers)
        return rows

    update.alters_data = True

    def delete(self):
        customers = _customers_of(self.model, self)
        deleted = super().delete()
        customer_pages_changed(customers)
        return deleted

    delete.alters_data = True
    delete.queryset_only = True

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        if "__" not in self.model.customer_pages_path:
            customer_pages_changed(getattr(obj, self.model.customer_pages_path) for obj in created)
        else:
            saved = [obj.pk for obj in created if obj.pk is not None]
            customer_pages_changed(_customers_of(self.model, self.model._default_manager.filter(pk__in=saved)))
        return created

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs = list(objs)
        customers = _customers_of(self.model, self.model._default_manager.filter(pk__in=[o.pk for o in objs]))
        rows = super().bulk_update(objs, fields, *args, **kwargs)
        customers |= _customers_of(self.model, self.model._default_manager.filter(pk__in=[o.pk for o in objs]))
        customer_pages_changed(customers)
        return rows


def _instance_customer(instance) -> int | None:
    """The customer id of one row, as it is in memory (one query when it lies one relation away)."""
    path = type(instance).customer_pages_path
    if "__" not in path:
        return getattr(instance, path)
    relation, rest = path.split("__", 1)
    related_id = getattr(instance, type(instance)._meta.get_field(relation).attname)
    if related_id is None:
        return None
    related_model = type(instance)._meta.get_field(relation).related_model
    return related_model._default_manager.filter(pk=related_id).values_list(rest, flat=True).first()


def _loaded(sender, instance, **_):
    # The customer as loaded (direct paths only: a row one relation away does not move between customers).
    if "__" not in sender.customer_pages_path:
        instance._customer_pages_loaded = getattr(instance, sender.customer_pages_path)


def _written(sender, instance, **_):
    customer_pages_changed([_instance_customer(instance), getattr(instance, "_customer_pages_loaded", None)])
    _loaded(sender, instance)


def customer_pages_track(model) -> None:
    """Single-row saves and deletions of `model` mark its customer's pages stale (see the module)."""
    if not isinstance(model._default_manager.all(), CustomerPagesQuerySet):
        raise TypeError(f"{model.__name__} must use CustomerPagesQuerySet as its manager")
    for signal, receiver in ((post_init, _loaded), (post_save, _written), (post_delete, _written)):
        signal.connect(receiver, sender=model, dispatch_uid=f"customer_pages:{model._meta.label}:{signal}")
