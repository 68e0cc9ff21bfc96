"""Production settings plus the benchmark's bare view (tests/benchmarks/pages.py)."""

from shophosting.settings.prod import *  # noqa: F403

ROOT_URLCONF = "tests.benchmarks.pages_urls"
STATIC_ROOT = BASE_DIR / "var" / "bench" / "static"  # noqa: F405 - collected by the benchmark, as a deploy does
