"""A module that skips as a whole while it is collected; run by tests/test_infrastructure.py only."""

import pytest

pytest.importorskip("shophosting_no_such_module")


def test_never_reached():
    pass
