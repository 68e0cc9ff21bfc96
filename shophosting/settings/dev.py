"""Local development and the one-command demo (`bin/run`): embedded defaults where they serve."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Defaults applied before base reads the environment, so a bare `bin/run` works with nothing set.
os.environ.setdefault("DJANGO_SECRET_KEY", "dev-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
# The private redis-server that bin/run starts (RUN_REDIS_PORT), so manage.py commands run beside it
# reach the same queues as its worker.
os.environ.setdefault("REDIS_URL", f"redis://127.0.0.1:{os.environ.get('RUN_REDIS_PORT', '6390')}/0")
# A fixed Fernet key for demo data only; production refuses to start without its own.
os.environ.setdefault("CREDENTIALS_KEY", "gBo9k6DlouK83RNGJS0SIQQTNTor9HIowlzu2RbYRO0=")
# No registry here: stores run on the images `manage.py images_build` makes from Debian packages
# (Magento and OpenSearch as clearly named stand-ins).
for _variable, _image in [
    ("STORE_IMAGE_MARIADB", "mariadb"),
    ("STORE_IMAGE_REDIS", "redis"),
    ("STORE_IMAGE_WORDPRESS", "wordpress"),
    ("STORE_IMAGE_PHPMYADMIN", "phpmyadmin"),
    ("STORE_IMAGE_VARNISH", "varnish"),
    ("STORE_IMAGE_OPENSEARCH", "opensearch-standin"),
    ("STORE_IMAGE_MAGENTO", "magento-standin-web"),
]:
    os.environ.setdefault(_variable, f"shophosting/{_image}:local")
os.environ.setdefault("STORE_OBJECT_PREFIX", "shdev-store")
os.environ.setdefault("NGINX_ENABLED", "false")
os.environ.setdefault("TLS_ENABLED", "false")
os.environ.setdefault("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

from .base import *  # noqa: E402,F403

DEBUG = env.bool("DJANGO_DEBUG", default=True)  # noqa: F405
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])  # noqa: F405
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
