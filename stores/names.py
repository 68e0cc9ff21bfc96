"""Writes of a store's custom domains: adding one (with its www. alias), proving it, choosing the primary name,
removing one. The life of a name is drawn in stores/README.md ("Names"):

    pending ──proof (TXT token, or A/AAAA at PLATFORM_PUBLIC_ADDRESSES)──► active ⇄ unreachable
       │                                                                     │
       └──────────────────────────── removed ◄──────────────────────────────┘

A pending name holds nothing: any number of stores may wait for the same domain, and only the one whose proof
arrives first while nobody serves it gets it (the unique served_name column is the backstop). A served name
belongs to its store until it is removed or the store deleted; nobody else's proof takes it away.

DNS is asked by the caller (provisioning.domains, through stores.dns) outside any transaction; these
services only record what it said, under the store's row lock, with an event."""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from stores.dns import NameRecords
from stores.domains import domain_normalize
from stores.models import Store, StoreEvent, StoreName

N = StoreName.Status
WWW = "www."


def _event(store: Store, *, note: str, message: str = "", actor: User | None = None) -> None:
    StoreEvent.objects.create(
        store=store, old_status=store.status, new_status=store.status, actor=actor, note=note, message=message
    )


def _in_use_elsewhere(store: Store, name: str) -> bool:
    return (
        StoreName.objects.filter(served_name=name).exclude(store=store).exists()
        or Store.objects.filter(live_domain=name).exclude(pk=store.pk).exists()
    )


@transaction.atomic
def store_domain_add(
    *, store_id: int, domain: str, include_www: bool = True, actor: User | None = None
) -> list[StoreName]:
    """Add a custom domain, pending until its DNS proves control, and (with `include_www`, for a name that is
    not itself a www. one) its www. alias, proven by the same TXT record. Returns the new rows.

    ValidationError with a reason for what the merchant typed wrong: not a domain, the platform's own domain,
    a name the store has already, or one another store serves (the merchant cannot claim it by adding it)."""
    store = Store.objects.select_for_update().get(pk=store_id)
    if store.status == Store.Status.DELETED:
        raise ValidationError("This store has been deleted.")
    name = domain_normalize(domain)
    if store.names.filter(name=name).exists():
        raise ValidationError(f"{name} is already one of this store's names.")
    if _in_use_elsewhere(store, name):
        raise ValidationError(
            f"{name} is already in use by another store. If the domain is yours, remove it there first, or ask support."
        )
    token = secrets.token_hex(16)
    rows = [
        StoreName.objects.create(
            store=store, name=name, kind=StoreName.Kind.CUSTOM, status=N.PENDING, proof_domain=name, proof_token=token
        )
    ]
    alias = f"{WWW}{name}"
    if (
        include_www
        and not name.startswith(WWW)
        and len(alias) <= 253
        and not store.names.filter(name=alias).exists()
        and not _in_use_elsewhere(store, alias)
    ):
        rows.append(
            StoreName.objects.create(
                store=store,
                name=alias,
                kind=StoreName.Kind.CUSTOM,
                status=N.PENDING,
                proof_domain=name,
                proof_token=token,
            )
        )
    added = " and ".join(row.name for row in rows)
    _event(
        store,
        actor=actor,
        note=f"names added, waiting for proof: {added}",
        message=f"{added} added: waiting for proof.",
    )
    return rows


def name_proven(row: StoreName, records: NameRecords) -> str:
    """How the DNS answer proves control of `row` ("TXT record", "address"), or "" when it does not."""
    if row.proof_token and row.proof_token in records.txt:
        return "TXT record"
    public = {address.strip() for address in settings.PLATFORM_PUBLIC_ADDRESSES if address.strip()}
    if public and records.addresses and records.addresses <= public:
        return "address"
    return ""


def points_at_platform(records: NameRecords) -> bool:
    public = {address.strip() for address in settings.PLATFORM_PUBLIC_ADDRESSES if address.strip()}
    return bool(public and records.addresses and records.addresses <= public)


def store_name_check_record(*, name_id: int, records: NameRecords | None, error: str = "") -> bool:
    """Record one DNS check of a pending or unreachable name (`records` None when DNS did not answer: `error`
    says why, and nothing changes but the check's time and message). A pending name whose proof is there
    becomes ACTIVE, unless another store serves it by now; an unreachable one whose addresses are the
    platform's again becomes ACTIVE. Returns True when the name became active (the caller rewrites the
    store's vhost and certificate)."""
    try:
        with transaction.atomic():
            return _name_check_record(name_id=name_id, records=records, error=error)
    except IntegrityError:
        # Another store's proof of the same name committed between our check and our write.
        StoreName.objects.filter(pk=name_id, status=N.PENDING).update(
            checked_at=timezone.now(), status_message="This domain is already in use by another store."
        )
        return False


def _name_check_record(*, name_id: int, records: NameRecords | None, error: str) -> bool:
    row = StoreName.objects.filter(pk=name_id).select_related("store").first()
    if row is None:
        return False  # removed meanwhile
    store = Store.objects.select_for_update().get(pk=row.store_id)
    row = StoreName.objects.select_for_update().filter(pk=name_id).first()
    if row is None or row.status == N.ACTIVE:
        return False
    now = timezone.now()
    fields = {"checked_at": now}
    became_active = False
    if records is None:
        fields["status_message"] = f"DNS did not answer ({error[:300]}); checked again later."
    elif row.status == N.PENDING:
        how = name_proven(row, records)
        if not how:
            fields["status_message"] = (
                f"Not proven yet: no TXT record {row.proof_record} with this store's token"
                + (f", and {row.name} does not point at our address" if settings.PLATFORM_PUBLIC_ADDRESSES else "")
                + "."
            )
        elif _in_use_elsewhere(store, row.name):
            fields["status_message"] = "This domain is already in use by another store."
        else:
            fields.update(status=N.ACTIVE, served_name=row.name, proved_at=now, tls_failures=0, status_message="")
            became_active = True
            _event(
                store,
                note=f"name {row.name}: proven by its {how}, active",
                message=f"{row.name} is proven and now served by your store.",
            )
    elif row.status == N.UNREACHABLE:
        if points_at_platform(records):
            fields.update(status=N.ACTIVE, tls_failures=0, status_message="")
            became_active = True
            _event(
                store,
                note=f"name {row.name}: points at us again, active",
                message=f"{row.name} points at us again: HTTPS for it is being set up.",
            )
    StoreName.objects.filter(pk=row.pk).update(**fields, updated_at=now)
    return became_active


@transaction.atomic
def store_primary_set(*, store_id: int, name_id: int, actor: User | None = None) -> tuple[str, str]:
    """Make an active name of the store its primary name: the application's URLs use it and the other names
    redirect to it. Store.domain and live_domain follow. Returns (old primary, new primary); the caller runs
    the job that changes the application's URLs. ValidationError when the name cannot be primary."""
    store = Store.objects.select_for_update().get(pk=store_id)
    row = store.names.filter(pk=name_id).first()
    if row is None:
        raise ValidationError("That name is not one of this store's.")
    if row.status != N.ACTIVE:
        raise ValidationError(f"{row.name} is not active: only a proven name that points at us can be primary.")
    old = store.names.filter(is_primary=True).values_list("name", flat=True).first() or store.domain
    if row.is_primary:
        raise ValidationError(f"{row.name} is already the primary name.")
    store.names.exclude(pk=row.pk).update(is_primary=False)
    store.names.filter(pk=row.pk).update(is_primary=True)
    store.domain = store.live_domain = row.name
    store.save(update_fields=["domain", "live_domain", "updated_at"])
    _event(
        store,
        actor=actor,
        note=f"primary name {old} -> {row.name}",
        message=f"{row.name} is now the store's main address; {old} redirects to it.",
    )
    return old, row.name


@transaction.atomic
def store_domain_remove(*, store_id: int, name_id: int, actor: User | None = None) -> bool:
    """Remove a custom name from the store. The platform name and the primary name stay (choose another primary
    first). Returns whether the name was served (the caller rewrites the vhost)."""
    store = Store.objects.select_for_update().get(pk=store_id)
    row = store.names.filter(pk=name_id).first()
    if row is None:
        raise ValidationError("That name is not one of this store's.")
    if row.kind == StoreName.Kind.PLATFORM:
        raise ValidationError("The platform name cannot be removed: it is the store's address that always works.")
    if row.is_primary:
        raise ValidationError(f"{row.name} is the primary name: choose another primary name before removing it.")
    served = row.status in StoreName.SERVED
    row.delete()
    _event(store, actor=actor, note=f"name {row.name} removed", message=f"{row.name} removed from your store.")
    return served
