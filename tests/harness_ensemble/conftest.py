"""One torch thread for every ensemble test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs with :func:`tests.conftest.one_torch_thread` (a ``pytestmark`` in a
    conftest would not apply to the directory's tests)."""
