"""Tests for tests/test_infrastructure.py to run in a pytest subprocess, with and without CI=true. Never
collected by the suite itself (no test_ prefix): each of them skips on purpose."""

import pytest

from tests.conftest import require_tool


def test_needs_a_tool_that_is_not_installed():
    require_tool("shophosting-no-such-tool")


@pytest.mark.skipif(True, reason="a condition that never holds")
def test_skipped_by_a_marker():
    pass


def test_skipped_by_pytest_skip():
    pytest.skip("skipped on purpose")


@pytest.mark.ci_may_skip(reason="allow-listed on purpose, to show the allow list")
def test_allow_listed_skip():
    pytest.skip("allowed to skip")


def test_that_runs():
    assert True
