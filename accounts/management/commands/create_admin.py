import getpass
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from accounts.roles import Role
from accounts.services import audit_record, staff_user_ensure, temporary_password


class Command(BaseCommand):
    help = (
        "Create a staff user (or reset an existing one) in a role. Prompts for the password on a terminal; "
        "with --generate-password (or no terminal) it makes one and prints it once."
    )

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--name", default="", help="Full name, shown in the admin.")
        parser.add_argument("--role", choices=Role.values, default=Role.SUPER_ADMIN)
        parser.add_argument("--generate-password", action="store_true", help="Do not prompt; print a new one.")

    def handle(self, *args, email, name, role, generate_password, **options):
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"not an e-mail address: {email!r}") from exc
        interactive = sys.stdin.isatty()
        if generate_password or not interactive:
            password, printed = temporary_password(), True
        else:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("the two passwords differ")
            printed = False
        user, password = staff_user_ensure(email=email, role=Role(role), password=password)
        if name:
            first, _, last = name.partition(" ")
            user.first_name, user.last_name = first, last
            user.save(update_fields=["first_name", "last_name"])
        audit_record(event="staff_user_created", actor=None, email=user.email, role=role, via="create_admin")
        self.stdout.write(f"{user.email} is a {Role(role).label}.")
        if printed:
            self.stdout.write(f"password (shown once): {password}")
