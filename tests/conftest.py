"""Shared fixtures: paths to the real published data beside the repository; one torch thread."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCALELAB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real scaling data (../shared/data); CI lays it beside the clone."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set SCALELAB_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread: fast for tiny models, and the same reduction order in every run.

    Training test modules use it for every test: ``pytestmark = pytest.mark.usefixtures(
    "one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
