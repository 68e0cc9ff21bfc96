from django.core.management.base import BaseCommand, CommandError

from provisioning.exceptions import ProvisioningError
from provisioning.host_images import platform_images_refresh
from provisioning.images import (
    LOCAL_IMAGES,
    PRODUCTION_IMAGES,
    image_tags,
    images_build,
    production_builds,
    production_images_build,
)


class Command(BaseCommand):
    help = (
        "Build the local store images from deploy/images/ (cached by content hash; no registry), or with "
        "--production the production recipes (*-official) with their pinned inputs, tagged as the settings name them."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "names",
            nargs="*",
            help=(
                f"Only these images (of {', '.join(LOCAL_IMAGES)}; "
                f"with --production of {', '.join(PRODUCTION_IMAGES)})."
            ),
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would be built, and how, without building."
        )
        parser.add_argument(
            "--production",
            action="store_true",
            help="Build the production recipes (needs Docker Hub, wordpress.org, repo.magento.com and BuildKit).",
        )
        parser.add_argument(
            "--build-arg",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="With --production: override a recipe's pinned ARG (e.g. WOOCOMMERCE_SHA256).",
        )
        parser.add_argument(
            "--magento-composer-auth",
            metavar="PATH",
            help=(
                "With --production: Composer's auth.json with the repo.magento.com keys "
                "(a build secret, never in the image)."
            ),
        )

    def handle(self, *args, **options):
        if options["production"]:
            return self._production(options)
        if options["build_arg"] or options["magento_composer_auth"]:
            raise CommandError("--build-arg and --magento-composer-auth go with --production")
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
            platform_images_refresh(log=self.stdout.write)
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc

    def _production(self, options):
        build_args = {}
        for item in options["build_arg"]:
            name, equals, value = item.partition("=")
            if not equals or not name:
                raise CommandError(f"--build-arg {item!r}: expected NAME=VALUE")
            build_args[name] = value
        try:
            builds = production_builds(
                names=options["names"], build_args=build_args, composer_auth=options["magento_composer_auth"]
            )
            if options["dry_run"]:
                for build in builds:
                    self.stdout.write(str(build))
                return
            production_images_build(builds=builds, log=self.stdout.write)
            platform_images_refresh(log=self.stdout.write)
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc
