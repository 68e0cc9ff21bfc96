"""The local store images under deploy/images/, built from Debian packages, tagged by content hash.

An image is rebuilt only when the files in its directory change: `shophosting/<name>:<hash>` is looked
up first. `shophosting/<name>:local`, what the test settings use, is pointed at this checkout's build every time,
since checkouts sharing an engine each move it to their own.

The production recipes (`*-official`) are built elsewhere, on the platform's server: `production_builds` says
what would run and refuses what it could not build as pinned, `production_images_build` runs it.
"""

import hashlib
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from provisioning import docker_client
from provisioning.exceptions import ProvisioningError
from provisioning.image_contract import recipe_get, recipe_missing, recipe_parse
from shophosting.core.local_images import LOCAL_STORE_IMAGES

IMAGES_DIR = Path(settings.BASE_DIR) / "deploy" / "images"
# Build order: the ones the WooCommerce stack needs first; then the fence's helper (settings.EGRESS_IMAGE),
# which production builds here too (it is Debian's iptables, no store runs it).
LOCAL_IMAGES = [*LOCAL_STORE_IMAGES.values(), "egress"]


def content_hash(name: str) -> str:
    digest = hashlib.sha256()
    for path in sorted((IMAGES_DIR / name).rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(IMAGES_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def image_tags(name: str) -> tuple[str, str]:
    return f"shophosting/{name}:{content_hash(name)}", f"shophosting/{name}:local"


def images_build(*, names: list[str] | None = None, log=print) -> dict[str, str]:
    """Build what is missing or changed; returns name -> 'cached' | 'built'."""
    subprocess.run(["bash", str(IMAGES_DIR / "build-base.sh")], check=True)
    results = {}
    for name in names or LOCAL_IMAGES:
        hashed, local = image_tags(name)
        if docker_client.image_exists(tag=hashed):
            # Another checkout (a worktree, main) on the same engine may have moved :local to its own build.
            docker_client.image_tag(image=hashed, tag=local)
            results[name] = "cached"
        else:
            log(f"building {hashed}")
            docker_client.image_build(path=str(IMAGES_DIR / name), tags=[hashed, local])
            results[name] = "built"
        log(f"{name}: {results[name]} ({hashed})")
    return results


# --- Production images ----------------------------------------------------------------------------------
# The recipes production runs instead of the local ones, and where the settings name them. They need Docker
# Hub, wordpress.org or repo.magento.com, so they are built on the platform's own server (deploy/README.md,
# step 6), never on the development machines. Built with the docker CLI and BuildKit, not the SDK, whose
# build API is the legacy builder's: it has no build secrets, and Magento's Composer keys must be one.
PRODUCTION_IMAGES = {
    "wordpress-official": ("woocommerce", "web", "STORE_IMAGE_WORDPRESS"),
    "magento-official": ("magento", "web", "STORE_IMAGE_MAGENTO"),
}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ProductionBuild:
    name: str
    tag: str
    command: list[str]  # run with DOCKER_BUILDKIT=1

    def __str__(self) -> str:
        return f"{self.name} -> {self.tag}: DOCKER_BUILDKIT=1 {shlex.join(self.command)}"


def production_builds(
    *, names: list[str] | None = None, build_args: dict[str, str] | None = None, composer_auth: str | None = None
) -> list[ProductionBuild]:
    """What `images_build --production` runs, checked first: every recipe keeps its contract, is tagged as the
    settings name it (never over a local test image), has every pinned input (a *_SHA256 ARG is 64 hex
    digits), and Magento's build has its Composer auth file. Raises ProvisioningError naming what is wrong."""
    names = names or list(PRODUCTION_IMAGES)
    build_args = build_args or {}
    unknown = sorted(set(names) - set(PRODUCTION_IMAGES))
    if unknown:
        raise ProvisioningError(
            f"unknown production image(s) {', '.join(unknown)}; known: {', '.join(PRODUCTION_IMAGES)}"
        )
    builds, known_args = [], set()
    for name in names:
        spec = recipe_get(name)
        missing = recipe_missing(spec)
        if missing:
            raise ProvisioningError(f"{name} does not keep its contract: {'; '.join(missing)}")
        platform, role, variable = PRODUCTION_IMAGES[name]
        tag = settings.STORE_IMAGES[platform][role]
        if tag.split(":")[0] in {f"shophosting/{local}" for local in LOCAL_IMAGES}:
            raise ProvisioningError(
                f"{variable} names the local test image {tag}; build production images with the production settings"
            )
        recipe = recipe_parse(name=name, dockerfile=spec.dockerfile, context=spec.context)
        known_args.update(recipe.args)
        args = {arg: build_args.get(arg, default) for arg, default in recipe.args.items()}
        for arg, value in args.items():
            if arg.endswith("_SHA256") and not SHA256.match(value):
                raise ProvisioningError(
                    f"{name}: {arg} is not pinned (set it in {spec.dockerfile.relative_to(settings.BASE_DIR)}"
                    f" from a download you checked, or pass --build-arg {arg}=<sha256>)"
                )
        command = ["docker", "build", "--pull", "-f", str(spec.dockerfile), "-t", tag]
        command += [f"--build-arg={arg}={value}" for arg, value in args.items()]
        if any("id=composer_auth" in run for run in recipe.runs):  # magento-official's repo.magento.com keys
            if not composer_auth or not Path(composer_auth).is_file():
                raise ProvisioningError(
                    "magento-official needs --magento-composer-auth: Composer's auth.json with the repo.magento.com"
                    f" access keys ({composer_auth or 'not given'} is no file)"
                )
            command.append(f"--secret=id=composer_auth,src={composer_auth}")
        builds.append(ProductionBuild(name=name, tag=tag, command=[*command, str(spec.context)]))
    unused = sorted(set(build_args) - known_args)
    if unused:
        raise ProvisioningError(f"--build-arg {', '.join(unused)}: no such ARG in {', '.join(names)}")
    return builds


def production_images_build(*, builds: list[ProductionBuild], log=print) -> None:
    for build in builds:
        log(f"building {build}")
        # The build's own output goes to the operator's terminal as it comes: a cold Magento build takes long.
        result = subprocess.run(build.command, env={**os.environ, "DOCKER_BUILDKIT": "1"}, check=False)
        if result.returncode != 0:
            raise ProvisioningError(f"{build.name}: docker build exited {result.returncode} (its output is above)")
        log(f"{build.name}: built {build.tag}")
