"""The test suite's own machinery: under CI=true nothing passes by skipping, and the test nginx works from a
checkout that no other user can enter."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def run_probe(probe: str, *, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", f"tests/{probe}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_under_ci_a_missing_tool_or_any_skip_fails_the_run():
    result = run_probe("ci_strict_probe.py", ci=True)
    out = result.stdout
    assert result.returncode == 1, out
    assert "shophosting-no-such-tool is required under CI=true" in out
    assert "FAILED tests/ci_strict_probe.py::test_needs_a_tool_that_is_not_installed" in out
    # A skip from a marker or from pytest.skip fails too; only the allow-listed one may skip.
    assert "ERROR tests/ci_strict_probe.py::test_skipped_by_a_marker" in out
    assert "FAILED tests/ci_strict_probe.py::test_skipped_by_pytest_skip" in out
    assert "skipped under CI=true, which counts as a failure: skipped on purpose" in out
    assert "SKIPPED [1] tests/ci_strict_probe.py:24: allowed to skip" in out
    assert "2 failed, 1 passed, 1 skipped, 1 error" in out


def test_under_ci_a_module_skipped_while_collected_fails_the_run():
    result = run_probe("ci_strict_probe_module.py", ci=True)
    assert result.returncode != 0, result.stdout
    assert "skipped under CI=true, which counts as a failure: could not import 'shophosting_no_such_module'" in (
        result.stdout
    )


def test_without_ci_the_same_tests_skip_with_their_reason():
    result = run_probe("ci_strict_probe.py", ci=False)
    out = result.stdout
    assert result.returncode == 0, out
    assert "shophosting-no-such-tool is missing: `shophosting-no-such-tool` is not on PATH; bin/test installs it" in out
    assert "1 passed, 4 skipped" in out


def test_the_test_nginx_runs_its_workers_as_the_invoking_user(nginx_server):
    """Started by root without a `user` line, nginx's workers would be `nobody`, who cannot read the ACME
    webroot or the temp paths of a checkout under a 0700 directory (/root/shophosting)."""
    master = int((Path(settings.NGINX_SITES_DIR).parent / "nginx.pid").read_text())
    workers = [
        int(status.parent.name)
        for status in Path("/proc").glob("[0-9]*/status")
        if _field(status, "PPid") == str(master)
    ]
    assert workers
    for pid in workers:
        real, effective, *_ = _field(Path(f"/proc/{pid}/status"), "Uid").split()
        assert (int(real), int(effective)) == (os.getuid(), os.geteuid())


def _field(status: Path, name: str) -> str:
    try:
        lines = status.read_text().splitlines()
    except OSError:  # the process went away
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(f"{name}:")), "")
