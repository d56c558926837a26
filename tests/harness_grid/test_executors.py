"""The cluster executors, exercised locally: Ray against a local instance, SLURM via submitit's
local executor. Both must give the same metrics as the default local executor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalelab.harness.executors import LocalExecutor, RayExecutor, SubmititExecutor, run_grid
from scalelab.harness.grid import parse_grid

from .test_run_grid import GRID


def _runs():
    import tomllib

    return parse_grid(tomllib.loads(GRID.format(steps=12))).runs()


def _metrics(store: Path) -> dict[str, list[dict]]:
    out = {}
    for d in sorted(p for p in store.iterdir() if p.is_dir()):
        rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        out[d.name] = [r for r in rows if r["metric"] != "tokens_per_s"]
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, list[dict]]:
    store = tmp_path_factory.mktemp("ref")
    summary = run_grid(_runs(), str(store), LocalExecutor(workers=2))
    assert summary.ok and summary.count("finished") == 2
    return _metrics(store)


@pytest.mark.slow
def test_ray_executor_matches_local(tmp_path: Path, reference) -> None:
    pytest.importorskip("ray")
    summary = run_grid(_runs(), str(tmp_path), RayExecutor(address=None, cpus_per_run=1))
    assert summary.ok, [o.error for o in summary.outcomes]
    assert _metrics(tmp_path) == reference


@pytest.mark.slow
def test_submitit_local_executor_matches_local(tmp_path: Path, reference) -> None:
    pytest.importorskip("submitit")
    store = tmp_path / "store"
    ex = SubmititExecutor(folder=str(tmp_path / "logs"), cluster="local", timeout_min=10)
    summary = run_grid(_runs(), str(store), ex)
    assert summary.ok, [o.error for o in summary.outcomes]
    assert _metrics(store) == reference
