"""Fixtures for the W&B tests: an isolated wandb environment and the fake server.

wandb reads its environment once per process (until ``wandb.teardown()``), and sets variables
of its own (``WANDB_SERVICE``); every test that uses it gets a fresh wandb session, a private
WANDB_DIR / cache / config folder, a dummy 40-character API key, and everything restored after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tracking.fake_server import FakeWandb

#: A dummy API key (40 characters), used only in tests: no file written may ever contain it.
DUMMY_KEY = "scalelabdummykey0123456789abcdefghijklmn"
assert len(DUMMY_KEY) == 40


def scan_for_key(root: Path, key: str = DUMMY_KEY) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``key``."""
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            try:
                if key.encode() in p.read_bytes():
                    hits.append(p)
            except OSError:
                continue
    return hits


@pytest.fixture
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean wandb session whose files all live under ``tmp_path/wandb-home`` (yielded)."""
    wandb = pytest.importorskip("wandb")
    wandb.teardown()
    before = {k for k in os.environ if k.startswith("WANDB_")}
    for key in [*before, "SCALELAB_WANDB"]:
        monkeypatch.delenv(key, raising=False)
    home = tmp_path / "wandb-home"
    for var, sub in (("WANDB_DIR", "dir"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"),
                     ("WANDB_DATA_DIR", "data"), ("WANDB_ARTIFACT_DIR", "artifacts")):
        (home / sub).mkdir(parents=True)
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("NETRC", str(home / "no-netrc"))
    yield home
    wandb.teardown()
    for key in [k for k in os.environ if k.startswith("WANDB_") and k not in before]:
        os.environ.pop(key, None)  # what wandb itself set (monkeypatch restores the rest)


@pytest.fixture
def fake_wandb(wandb_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWandb]:
    """The fake W&B server, with WANDB_BASE_URL pointing at it."""
    with FakeWandb(DUMMY_KEY) as server:
        monkeypatch.setenv("WANDB_BASE_URL", server.url)
        yield server
