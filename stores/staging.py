"""Staging copies as stores: the Store row of a live store's staging copy (`Store.staging_of`), its platform
name and its basic-auth credentials. The copy's containers, data and pushes are the `staging` app's jobs
(backups/staging/README.md); this module only writes the rows, under the live store's lock.

A staging copy is a store of its own so that everything a store has works for it unchanged: placement (on
its live store's host, counted against that host's capacity), its own stack, job checklist and admin page.
It has no subscription (billing's store limit does not count it) and no custom domain: it answers on one
platform name, `<live label>-staging.<PLATFORM_DOMAIN>`, behind HTTP basic auth."""

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from stores import crypto
from stores.domains import platform_name
from stores.models import Store, StoreEvent, StoreName

S = Store.Status
STAGING_USER = "staging"  # the basic-auth user; the password is per copy


def staging_copy_of(live: Store) -> Store | None:
    """The live store's staging copy that is not deleted (at most one), or None."""
    return live.staging_copies.exclude(status=S.DELETED).order_by("-pk").first()


def _staging_label(live: Store) -> str:
    platform = live.names.filter(kind=StoreName.Kind.PLATFORM).first()
    base = platform.name.split(".", 1)[0] if platform else f"store-{live.pk}"
    return f"{base[:50]}-staging"


@transaction.atomic
def staging_store_create(*, live_store_id: int, actor: User | None = None) -> Store:
    """The Store row of a new staging copy of `live_store_id`, queued (its setup job is the caller's). Refused
    with a ValidationError in plain words: a plan without the `staging` feature, a store that is not live, a
    staging copy of a staging copy, a second copy."""
    live = Store.objects.select_for_update().select_related("plan", "customer").get(pk=live_store_id)
    if live.staging_of_id:
        raise ValidationError("This is a staging copy already; make a staging copy of the live store instead.")
    if not live.plan.staging:
        raise ValidationError(
            f"Staging copies are not part of the {live.plan.name} plan. Choose a plan that includes staging "
            "to make one."
        )
    if live.status != S.ACTIVE:
        raise ValidationError(
            f"A staging copy is made from a live store; {live.domain} is {live.get_status_display().lower()}."
        )
    if staging_copy_of(live) is not None:
        raise ValidationError(f"{live.domain} has a staging copy already: refresh it, or delete it first.")
    label = _staging_label(live)
    for candidate in (label, f"store-{live.pk}-staging"):
        try:
            name = platform_name(candidate)
        except ValidationError:
            continue
        if (
            not StoreName.objects.filter(served_name=name).exists()
            and not Store.objects.filter(live_domain=name).exists()
        ):
            break
    else:
        raise ValidationError("No platform name is free for the staging copy; our team has been told.")
    staging = Store.objects.create(
        customer=live.customer,
        plan=live.plan,
        platform=live.platform,
        domain=name,
        live_domain=name,
        site_title=f"{live.site_title} (staging)"[:200],
        status=S.QUEUED,
        staging_of=live,
        phpmyadmin_enabled=False,
    )
    # Its one name: the platform name, primary (the vhost serves it; store_names_ensure adds nothing more).
    StoreName.objects.create(store=staging, name=name, served_name=name, kind=StoreName.Kind.PLATFORM, is_primary=True)
    credentials = {"staging_user": STAGING_USER, "staging_password": secrets.token_urlsafe(18)}
    if live.platform == "magento":
        # Magento's install configuration (app/etc/env.php: the database password, the crypt key that
        # decrypts the copied database's secrets) lives in the `env` volume the copy receives from live, so the
        # copy's database user gets the live store's password, and its admin login is the live store's (its
        # users come with the database). The database root password stays the copy's own.
        live_credentials = crypto.decrypt(live.credentials_encrypted) if live.credentials_encrypted else {}
        shared = ("db_user", "db_password", "admin_user", "admin_email", "admin_password")
        if all(live_credentials.get(key) for key in shared):
            credentials |= {key: live_credentials[key] for key in shared}
            credentials["db_root_password"] = secrets.token_urlsafe(24)
    staging.credentials_encrypted = crypto.encrypt(credentials)
    staging.save(update_fields=["credentials_encrypted"])
    StoreEvent.objects.create(
        store=staging, old_status="", new_status=staging.status, actor=actor, note=f"staging copy of store {live.pk}"
    )
    StoreEvent.objects.create(
        store=live,
        old_status=live.status,
        new_status=live.status,
        actor=actor,
        note=f"staging copy {staging.pk} ({name}) requested",
        message=f"A staging copy is being made at {name}.",
    )
    return staging
