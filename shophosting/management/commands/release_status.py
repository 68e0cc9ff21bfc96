import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def running_version() -> str:
    """The checked-out commit (git describe), or the VERSION file of a release without .git."""
    base = Path(settings.BASE_DIR)
    try:
        described = subprocess.run(
            ["git", "-C", str(base), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return described.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        version_file = base / "VERSION"
        return version_file.read_text().strip() if version_file.exists() else "unknown"


class Command(BaseCommand):
    help = "Print the running version and the migrations not applied yet; exit 1 when some are pending."

    def handle(self, *args, **options):
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        self.stdout.write(f"version: {running_version()}")
        if not pending:
            self.stdout.write("migrations: none pending")
            return
        self.stdout.write(f"migrations: {len(pending)} pending")
        for migration, backwards in pending:
            self.stdout.write(f"  {migration.app_label}.{migration.name}{' (backwards)' if backwards else ''}")
        raise SystemExit(1)
