"""Staff roles: Django Groups with permissions. The Groups are created by migration 0002; their
permissions are (re)applied after every migrate, once all apps' permissions exist."""

from django.db import models
from django.db.models.signals import post_migrate
from django.dispatch import receiver


class Role(models.TextChoices):
    SUPER_ADMIN = "super_admin", "Super admin"
    ADMIN = "admin", "Admin"
    SUPPORT = "support", "Support"
    EDITOR = "editor", "Editor"

    def group(self):
        from django.contrib.auth.models import Group

        return Group.objects.get_or_create(name=self.value)[0]


# "app_label.codename" permissions per role; "*" is every permission. The admin enforces them on every page,
# action and custom view (tests/test_admin_roles.py walks every admin URL for each role).
#   super_admin: everything, including admin users, the CMS, pricing and the RQ dashboard.
#   admin: runs operations (stores, jobs, backups, customers, support); views admin users and billing.
#   support: views customers, stores and jobs; handles tickets and consultations; nothing destructive.
#   editor: the marketing site in Wagtail (pages, images, documents); nothing in the operations admin.
_SUPPORT_DESK = [
    "consultations.view_contactmessage",
    "consultations.change_contactmessage",
    "consultations.view_consultationrequest",
    "consultations.change_consultationrequest",
    "consultations.view_ticket",
    "consultations.change_ticket",
    "consultations.view_ticketmessage",
]
_VIEW_CUSTOMERS_AND_STORES = [
    "accounts.view_customer",
    "stores.view_store",
    "stores.view_storeevent",
    "provisioning.view_provisioningjob",
    "provisioning.view_rollout",
    "provisioning.view_incident",
    "provisioning.view_pooltarget",
    "provisioning.view_poolstack",
    "billing.view_plan",
    "billing.view_subscription",
    "billing.view_subscriptionevent",
]
ROLE_PERMISSIONS: dict[Role, list[str] | str] = {
    Role.SUPER_ADMIN: "*",
    Role.ADMIN: [
        *_SUPPORT_DESK,
        *_VIEW_CUSTOMERS_AND_STORES,
        "accounts.view_staffuser",
        "accounts.change_customer",
        "accounts.close_customer_account",  # at the customer's request (billing.services.closure)
        "accounts.view_auditevent",
        "stores.add_store",
        "stores.change_store",
        "stores.delete_store",
        "stores.operate_store",
        "provisioning.operate_rollout",  # the roles that operate stores roll out their images
        "provisioning.change_pooltarget",  # and size the warm pool
        "provisioning.add_pooltarget",
        "stores.reveal_store_credentials",
        "stores.view_host",
        "backups.view_backuprun",
        "backups.view_restorerun",
        "backups.run_system_backup",
        "backups.view_hostrecovery",  # and restore a lost host's stores elsewhere from their backups
        "backups.recover_host",
        "provisioning.use_rq_dashboard",
        # The public status page's notices: written, edited and closed by those who run operations.
        "statuspage.view_statusnotice",
        "statuspage.add_statusnotice",
        "statuspage.change_statusnotice",
    ],
    Role.SUPPORT: [*_SUPPORT_DESK, *_VIEW_CUSTOMERS_AND_STORES, "statuspage.view_statusnotice"],
    Role.EDITOR: [
        "wagtailadmin.access_admin",
        "wagtailimages.add_image",
        "wagtailimages.change_image",
        "wagtailimages.choose_image",
        "wagtaildocs.add_document",
        "wagtaildocs.change_document",
        "wagtaildocs.choose_document",
    ],
}
# Wagtail's page permissions are granted on a page (here the tree's root, so every page): editors draft,
# publish, schedule and roll back. Deleting or moving pages stays with super admins.
PAGE_PERMISSIONS: dict[Role, list[str]] = {
    Role.EDITOR: ["add_page", "change_page", "publish_page", "lock_page", "unlock_page"],
}


def roles_sync() -> None:
    from django.contrib.auth.models import Permission

    for role, wanted in ROLE_PERMISSIONS.items():
        if wanted == "*":
            permissions = Permission.objects.all()
        else:
            pairs = [name.split(".", 1) for name in wanted]
            query = models.Q(pk__in=[])
            for app_label, codename in pairs:
                query |= models.Q(content_type__app_label=app_label, codename=codename)
            permissions = Permission.objects.filter(query)
        role.group().permissions.set(permissions)
    _page_permissions_sync()


def _page_permissions_sync() -> None:
    from django.contrib.auth.models import Permission
    from wagtail.models import GroupPagePermission, Page

    root = Page.get_first_root_node()
    if root is None:
        return
    for role, codenames in PAGE_PERMISSIONS.items():
        group = role.group()
        for permission in Permission.objects.filter(content_type__app_label="wagtailcore", codename__in=codenames):
            GroupPagePermission.objects.get_or_create(group=group, page=root, permission=permission)


@receiver(post_migrate)
def _roles_sync_after_migrate(sender, **kwargs):
    # post_migrate fires once per app, and each app's permissions are created when it fires for that
    # app; so sync once, after the last installed app.
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    # post_migrate is sent only for apps with a models module (the project package has none).
    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if sender.name == with_models[-1].name:
        # Receivers of one signal run in connection order, which is not guaranteed to put auth's own
        # create_permissions for this last app before us: create them all first (idempotent).
        for app_config in apps.get_app_configs():
            create_permissions(app_config, verbosity=0, using=kwargs.get("using", "default"))
        roles_sync()
