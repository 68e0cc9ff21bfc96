"""CI-strict skipping: a missing tool skips locally but fails under CI=true, and so does any other skip
unless the test carries @pytest.mark.ci_may_skip(reason=...). tests/test_infrastructure.py proves it."""

import os
import shutil

import pytest

IN_CI = os.environ.get("CI") == "true"


def require_or_skip(what: str, reason: str) -> None:
    """`what` is missing: skip locally, but fail under CI=true, where a green run must not hide tests that
    never ran (bin/test installs and starts everything the tests need)."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"{what} is missing: {reason}")


def require_tool(name: str) -> str:
    """The path of the program `name`, or require_or_skip when it is not installed."""
    path = shutil.which(name)
    if path is None:
        require_or_skip(name, f"`{name}` is not on PATH; bin/test installs it")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true any skip (pytest.skip, skipif, importorskip, from any plugin) is reported as a failure,
    unless the test carries @pytest.mark.ci_may_skip(reason=...) saying why skipping there is fine."""
    outcome = yield
    report = outcome.get_result()
    if not (IN_CI and report.skipped) or hasattr(report, "wasxfail"):
        return
    allowed = item.get_closest_marker("ci_may_skip")
    if allowed is not None and allowed.kwargs.get("reason"):
        return
    _fail_skip_under_ci(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped while it is collected (a module-level importorskip or skip)."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        _fail_skip_under_ci(report)


def _fail_skip_under_ci(report) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"
