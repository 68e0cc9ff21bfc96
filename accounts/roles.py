"""Staff roles: Django Groups with permissions. The Groups are created by migration 0002; their
permissions are (re)applied after every migrate, once all apps' permissions exist."""

from django.db import models
from django.db.models.signals import post_migrate
from django.dispatch import receiver


class Role(models.TextChoices):
    SUPER_ADMIN = "super_admin", "Super admin"
    ADMIN = "admin", "Admin"
    SUPPORT = "support", "Support"

    def group(self):
        from django.contrib.auth.models import Group

        return Group.objects.get_or_create(name=self.value)[0]


# "app_label.codename" permissions per role; "*" is every permission. The staff-admin issue
# widens these as the admin grows. Pricing (changing plans, syncing them to Stripe) is for super admins only.
ROLE_PERMISSIONS: dict[Role, list[str] | str] = {
    Role.SUPER_ADMIN: "*",
    Role.ADMIN: [
        "accounts.view_user",
        "accounts.change_user",
        "accounts.add_user",
        "accounts.view_auditevent",
        "consultations.view_contactmessage",
        "consultations.change_contactmessage",
        "consultations.view_consultationrequest",
        "consultations.change_consultationrequest",
        "billing.view_plan",
        "billing.view_subscription",
        "billing.view_subscriptionevent",
        "consultations.view_ticket",
        "consultations.change_ticket",
        "consultations.view_ticketmessage",
    ],
    Role.SUPPORT: [
        "accounts.view_user",
        "accounts.view_auditevent",
        "consultations.view_contactmessage",
        "consultations.change_contactmessage",
        "consultations.view_consultationrequest",
        "consultations.change_consultationrequest",
        "billing.view_plan",
        "billing.view_subscription",
        "billing.view_subscriptionevent",
        "consultations.view_ticket",
        "consultations.change_ticket",
        "consultations.view_ticketmessage",
    ],
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


@receiver(post_migrate)
def _roles_sync_after_migrate(sender, **kwargs):
    # post_migrate fires once per app, and each app's permissions are created when it fires for that
    # app; so sync once, after the last installed app.
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    if sender.name == list(apps.get_app_configs())[-1].name:
        # Receivers of one signal run in connection order, which is not guaranteed to put auth's own
        # create_permissions for this last app before us: create them all first (idempotent).
        for app_config in apps.get_app_configs():
            create_permissions(app_config, verbosity=0, using=kwargs.get("using", "default"))
        roles_sync()
