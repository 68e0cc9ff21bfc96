"""A real restic repository for the session (var/test/restic)."""

import shutil
from pathlib import Path

import pytest
from django.conf import settings

from tests.plugins.ci import require_tool


@pytest.fixture(scope="session")
def restic_repository():
    """A real, empty restic repository for this test session (var/test/restic), with its password file."""
    from backups import restic

    require_tool(settings.RESTIC_BINARY)
    root = Path(settings.RESTIC_REPOSITORY).parent
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    Path(settings.RESTIC_PASSWORD_FILE).write_text("test-only restic password\n")
    Path(settings.RESTIC_PASSWORD_FILE).chmod(0o600)
    assert restic.repository_init() is True
    return settings.RESTIC_REPOSITORY
