"""The local store images under deploy/images/, built from Debian packages, tagged by content hash.

An image is rebuilt only when the files in its directory change: `shophosting/<name>:<hash>` is looked
up first. `shophosting/<name>:local`, what the test settings use, is pointed at this checkout's build every time,
since checkouts sharing an engine each move it to their own.
"""

import hashlib
import subprocess
from pathlib import Path

from django.conf import settings

from provisioning import docker_client
from shophosting.core.local_images import LOCAL_STORE_IMAGES

IMAGES_DIR = Path(settings.BASE_DIR) / "deploy" / "images"
# Build order: the ones the WooCommerce stack needs first.
LOCAL_IMAGES = list(LOCAL_STORE_IMAGES.values())


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
