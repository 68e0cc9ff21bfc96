"""Pytest plugins for the suite, loaded by tests/conftest.py's `pytest_plugins`: one module per outside
server or service the tests start or fake, plus the store factories."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout
