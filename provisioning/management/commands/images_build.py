from django.core.management.base import BaseCommand, CommandError

from provisioning.exceptions import ProvisioningError
from provisioning.images import LOCAL_IMAGES, image_tags, images_build


class Command(BaseCommand):
    help = "Build the local store images from deploy/images/ (cached by content hash; no registry)."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help=f"Only these images (of {', '.join(LOCAL_IMAGES)}).")
        parser.add_argument("--dry-run", action="store_true", help="Print the tags without building.")

    def handle(self, *args, **options):
        names = options["names"] or LOCAL_IMAGES
        unknown = sorted(set(names) - set(LOCAL_IMAGES))
        if unknown:
            raise CommandError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(LOCAL_IMAGES)}")
        if options["dry_run"]:
            for name in names:
                self.stdout.write(" ".join(image_tags(name)))
            return
        try:
            images_build(names=names, log=self.stdout.write)
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc
