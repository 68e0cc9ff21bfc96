from django.core.management.base import BaseCommand

from billing.services.plans import SEED_CATALOGUE, plan_catalogue_seed


class Command(BaseCommand):
    help = "Create the seed plan catalogue (idempotent: existing plans are left as staff edited them)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List the plans without writing anything.")

    def handle(self, *args, **options):
        if options["dry_run"]:
            for name, woo, magento, *_ in SEED_CATALOGUE:
                self.stdout.write(f"would ensure {name}: WooCommerce ${woo}/mo, Magento ${magento}/mo")
            return
        results = plan_catalogue_seed()
        created = sum(1 for _, was_created in results if was_created)
        self.stdout.write(self.style.SUCCESS(f"{created} plans created, {len(results) - created} already present"))
