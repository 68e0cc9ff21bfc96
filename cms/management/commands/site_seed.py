from django.core.management.base import BaseCommand

from cms.models import AboutPage, ContactPage, FeaturesPage, HomePage, PricingPage
from cms.services import site_seed


class Command(BaseCommand):
    help = (
        "Create the marketing site (home, pricing, features, about, contact) with its initial content. "
        "Idempotent: existing pages are never changed, so it is safe on every deploy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Say which pages would be created.")

    def handle(self, *args, dry_run, **options):
        models = [HomePage, PricingPage, FeaturesPage, AboutPage, ContactPage]
        missing = [model._meta.verbose_name for model in models if not model.objects.exists()]
        if dry_run:
            self.stdout.write(f"would create: {', '.join(missing) or 'nothing, every page exists'}")
            return
        home = site_seed()
        created = ", ".join(missing) if missing else "nothing new"
        self.stdout.write(self.style.SUCCESS(f"marketing site ready at {home.full_url} (created: {created})"))
