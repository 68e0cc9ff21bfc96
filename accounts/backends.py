"""The authentication backend: Django's ModelBackend, with the signed-in user loaded in one query.

Every request of a signed-in session loads its user, and the sign-in gates (accounts/middleware.py) then ask
whether that user has a confirmed second-factor device: django-otp asks each device table in turn, two more
round trips on every page. Here the user is loaded with that answer, one EXISTS per device table, so a page
pays one query for both. Nothing is cached: the answer is as fresh as the user row it comes with, however a
device was added or removed.
"""

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Exists, OuterRef, QuerySet
from django_otp import device_classes

User = get_user_model()


@functools.cache
def _users_with_device_flags() -> tuple[QuerySet, tuple[str, ...]]:
    """Users annotated with one flag per device table; built once (a query is cloned, not rebuilt, per use)."""
    flags = {
        f"_confirmed_device_{number}": Exists(device_class.objects.filter(user=OuterRef("pk"), confirmed=True))
        for number, device_class in enumerate(device_classes())
    }
    return User._default_manager.annotate(**flags), tuple(flags)


class AccountBackend(ModelBackend):
    def get_user(self, user_id):
        users, flags = _users_with_device_flags()
        try:
            user = users.get(pk=user_id)
        except User.DoesNotExist:
            return None
        if not self.user_can_authenticate(user):
            return None
        # Read by accounts.selectors.second_factor_pending instead of asking django-otp again.
        user.has_confirmed_device = any(getattr(user, name) for name in flags)
        return user
