"""A store's custom domains as jobs see them: checking the proof in DNS (stores.dns, outside any transaction),
recording it (stores.names), and bringing the store's vhost and certificate in line (an https_settings job),
or its application's URLs after a primary-name change (a primary_name job). Views, the admin and the periodic
check call these; stores/README.md ("Names") draws the life of a name."""

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from provisioning import proxy
from provisioning.exceptions import JobConflict
from provisioning.models import ProvisioningJob
from provisioning.services import job_enqueue, store_certificate_short
from stores import dns
from stores.exceptions import InvalidTransition
from stores.models import Store, StoreName
from stores.names import store_domain_add, store_domain_remove, store_name_check_record, store_primary_set

logger = logging.getLogger(__name__)
N = StoreName.Status
# A job that rewrites the vhost and certificate runs only on a store that has them.
NAMES_APPLY_STATUSES = (Store.Status.ACTIVE, Store.Status.SUSPENDED)


def _names_apply(store_id: int, *, actor: User | None) -> ProvisioningJob | None:
    """Queue the job that serves the store's names as they are now (vhost, then a certificate for new ones).
    None when the store has no vhost yet (provisioning writes it from the names) or is busy: the periodic check
    queues it once the store is free (stores_names_apply_due)."""
    if not Store.objects.filter(pk=store_id, status__in=NAMES_APPLY_STATUSES).exists():
        return None
    try:
        return job_enqueue(store_id=store_id, kind=ProvisioningJob.Kind.HTTPS_SETTINGS, actor=actor)
    except (JobConflict, InvalidTransition) as exc:
        logger.info("store %s: its names are applied later (%s)", store_id, exc)
        return None


def store_domain_request(*, store_id: int, domain: str, include_www: bool = True, actor: User | None = None):
    """Add a custom domain (and its www. alias), then check it at once: a domain whose proof is already in
    DNS (its address is ours) is active without waiting. ValidationError for bad input, nothing saved."""
    rows = store_domain_add(store_id=store_id, domain=domain, include_www=include_www, actor=actor)
    store_names_check(store_id=store_id, name_ids=[row.pk for row in rows], actor=actor)
    return rows


def store_names_check(*, store_id: int, name_ids: list[int] | None = None, actor: User | None = None) -> list[str]:
    """Ask DNS about the store's pending and unreachable names (or `name_ids` of them) and record the answers;
    when any became active, queue the job that serves them. Returns the names that became active."""
    rows = StoreName.objects.filter(store_id=store_id, status__in=(N.PENDING, N.UNREACHABLE))
    if name_ids is not None:
        rows = rows.filter(pk__in=name_ids)
    activated = []
    for row in list(rows):
        try:
            records, error = dns.name_records(name=row.name, txt_name=row.proof_record), ""
        except dns.DnsLookupError as exc:
            records, error = None, str(exc)
        if store_name_check_record(name_id=row.pk, records=records, error=error):
            activated.append(row.name)
    if activated:
        with transaction.atomic():
            _names_apply(store_id, actor=actor)
    return activated


def stores_names_check_due() -> int:
    """The periodic check: every pending name of a store not deleted, and every unreachable one (which comes
    back when its DNS points at us again); then the stores whose served names are not applied yet. Returns
    how many names were checked."""
    store_ids = (
        StoreName.objects.filter(status__in=(N.PENDING, N.UNREACHABLE))
        .exclude(store__status__in=(Store.Status.DELETING, Store.Status.DELETED))
        .values_list("store_id", flat=True)
        .distinct()
    )
    checked = 0
    for store_id in list(store_ids):
        checked += StoreName.objects.filter(store_id=store_id, status__in=(N.PENDING, N.UNREACHABLE)).count()
        store_names_check(store_id=store_id)
    stores_names_apply_due()
    return checked


def stores_names_apply_due() -> list[int]:
    """Queue the names job for live stores whose vhost does not serve exactly their served names (a name
    proven or removed while another operation held the store: its job was refused), or whose certificate
    lacks an active custom name (unless a certificate retry is scheduled already)."""
    if not settings.NGINX_ENABLED:
        return []
    queued = []
    for store in Store.objects.filter(status__in=NAMES_APPLY_STATUSES).exclude(host=None):
        served = set(store.names.filter(status__in=StoreName.SERVED).values_list("name", flat=True))
        stale_vhost = served != proxy.vhost_names(domain=store.proxy_key)
        short_certificate = (
            settings.TLS_ENABLED
            and store.tls_status != Store.TLS.PENDING
            and store.names.filter(kind=StoreName.Kind.CUSTOM, status=N.ACTIVE).exists()
            and bool(store_certificate_short(store))
        )
        if stale_vhost or short_certificate:
            with transaction.atomic():
                if _names_apply(store.pk, actor=None):
                    queued.append(store.pk)
    return queued


@transaction.atomic
def store_domain_delete(*, store_id: int, name_id: int, actor: User | None = None) -> None:
    """Remove a custom name; when it was served, the vhost stops serving it (an https_settings job)."""
    if store_domain_remove(store_id=store_id, name_id=name_id, actor=actor):
        _names_apply(store_id, actor=actor)


@transaction.atomic
def store_primary_change(*, store_id: int, name_id: int, actor: User | None = None) -> ProvisioningJob:
    """Make an active name the primary one and run the job that restarts the application with it, moves its
    stored URLs there and redirects the other names to it: both or neither (JobConflict while another
    operation holds the store, ValidationError for a name that cannot be primary)."""
    if not Store.objects.filter(pk=store_id, status=Store.Status.ACTIVE).exists():
        raise ValidationError("The primary name can be changed once the store is live (active).")
    store_primary_set(store_id=store_id, name_id=name_id, actor=actor)
    return job_enqueue(store_id=store_id, kind=ProvisioningJob.Kind.PRIMARY_NAME, actor=actor)
