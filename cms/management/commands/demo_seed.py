from django.core.management.base import BaseCommand

from accounts.roles import Role
from accounts.services import staff_user_ensure
from billing.services.plans import plan_catalogue_seed
from cms.services import site_seed


class Command(BaseCommand):
    help = "Load demo data: the plan catalogue, the marketing pages and a super-admin staff user."

    def add_arguments(self, parser):
        parser.add_argument("--staff-email", default="admin@shophosting.local")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be loaded, write nothing.")

    def handle(self, *args, **options):
        email = options["staff_email"]
        if options["dry_run"]:
            self.stdout.write(f"would load plans, the marketing site, and staff user {email} with a new password")
            return
        plans = plan_catalogue_seed()
        home = site_seed()
        _, password = staff_user_ensure(email=email, role=Role.SUPER_ADMIN)
        self.stdout.write(f"plans: {len(plans)}; marketing site under {home.title}")
        self.stdout.write(self.style.SUCCESS(f"staff user: {email}  password: {password}"))
