"""Fixtures of the report tests: a small run store, a real Chinchilla fit and a backtest file.

The run store is written through the RunStore API without training (seconds instead of
minutes): three runs of two sizes, each evaluated at 21 log-spaced steps on two skills. The
"copy" skill rises along a sigmoid in log-step whose midpoint is known (step 300 for the
small size, 100 for the large), plus seeded noise; "parity<&>" stays flat at chance (its
name also exercises HTML escaping). Every run also logs an eval loss on "prose".

The fit and the backtest are real: Chinchilla's published points (Hoffmann et al. 2022,
bundled), fitted with a small bootstrap; the backtest fits the runs below 1e9 parameters and
predicts those above 3e9, in the ``scalelab.backtest/1`` schema another module will produce.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scalelab.fit import FitResult, fit
from scalelab.store.runs import RunStore

#: (run id, n_params, true midpoint of "copy", seed)
RUNS = (
    ("small-s0", 100_000, 300.0, 0),
    ("large-s0", 400_000, 100.0, 0),
    ("large-s1", 400_000, 100.0, 1),
)
STEPS = np.unique(np.concatenate([[0], np.round(np.geomspace(1, 4000, 20))])).astype(int)
TOKENS_PER_STEP = 512
SKILLS = ("copy", "parity<&>")
BACKTEST_FIT_WHERE = "excluded_by_epoch == 0 and params_N < 1e9"
BACKTEST_HOLDOUT_WHERE = "excluded_by_epoch == 0 and params_N > 3e9"


def _copy_accuracy(steps: np.ndarray, midpoint: float, rng: np.random.Generator) -> np.ndarray:
    u = (np.log(steps + 1.0) - math.log(midpoint + 1.0)) / 0.5
    clean = 0.02 + 0.93 / (1 + np.exp(-u))
    return np.clip(clean + rng.normal(0, 0.01, size=steps.size), 0, 1)


def write_store(root: Path) -> Path:
    """Write the synthetic store into ``root``; returns it."""
    store = RunStore(root)
    for run_id, n_params, midpoint, seed in RUNS:
        rng = np.random.default_rng(seed + int(n_params))
        run = store.run(run_id)
        run.start({"model": {"size": run_id.split("-")[0]}, "seed": seed})
        copy = _copy_accuracy(STEPS.astype(float), midpoint, rng)
        parity = np.clip(0.5 + rng.normal(0, 0.01, size=STEPS.size), 0, 1)
        loss = 5.0 * (STEPS + 10.0) ** -0.15 * (400_000 / n_params) ** 0.05
        records: list[dict[str, Any]] = []
        for i, step in enumerate(STEPS.tolist()):
            common = {"step": step, "tokens": step * TOKENS_PER_STEP,
                      "flops": 6.0 * n_params * step * TOKENS_PER_STEP, "split": "eval"}
            records += [
                {**common, "source": "copy", "metric": "acc", "value": float(copy[i])},
                {**common, "source": "parity<&>", "metric": "acc", "value": float(parity[i])},
                {**common, "source": "prose", "metric": "loss", "value": float(loss[i])},
            ]
            records.append({**common, "split": "train", "source": "all", "metric": "online_loss",
                            "value": float(loss[i]) + 0.1})
        with run.lock():
            run.append_metrics(records)
            run.set_status("finished", step=int(STEPS[-1]), n_params=n_params)
    return root


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("store") / "runs")


@pytest.fixture(scope="session")
def chinchilla_fit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Chinchilla (Approach 3) on the 240 points Epoch keeps, 40 bootstrap refits."""
    res = fit("chinchilla", "chinchilla", x={"N": "params_N", "D": "tokens_D"}, y="loss",
              where="excluded_by_epoch == 0", bootstrap=40, seed=0)
    path = tmp_path_factory.mktemp("fits") / "chinchilla.json"
    res.save(path)
    return path


def make_backtest() -> dict[str, Any]:
    """A real backtest in schema scalelab.backtest/1: fit small runs, predict large ones."""
    from scalelab.store import read_table

    res = fit("chinchilla", "chinchilla", x={"N": "params_N", "D": "tokens_D"}, y="loss",
              where=BACKTEST_FIT_WHERE, bootstrap=40, seed=0)
    held = read_table("chinchilla").where(BACKTEST_HOLDOUT_WHERE)
    n, d, y = held.numeric("params_N"), held.numeric("tokens_D"), held.numeric("loss")
    pred = res.predict(N=n, D=d, coverage=0.95)
    inside = (pred.lower <= y) & (y <= pred.upper)
    rows = [
        {"inputs": {"N": float(n[i]), "D": float(d[i])}, "y": float(y[i]),
         "yhat": float(pred.mean[i]), "lower": float(pred.lower[i]),
         "upper": float(pred.upper[i]), "inside": bool(inside[i])}
        for i in range(len(y))
    ]
    err = pred.mean - y
    return {
        "schema": "scalelab.backtest/1",
        "law": "chinchilla",
        "x": {"N": "params_N", "D": "tokens_D"},
        "y": "loss",
        "holdout": "params_N > 3e9",
        "n_fit": res.n_points,
        "n_holdout": len(rows),
        "coverage_level": 0.95,
        "metrics": {
            "are": float(np.mean(np.abs(err) / y)),
            "mae": float(np.mean(np.abs(err))),
            "max_abs_error": float(np.max(np.abs(err))),
            "coverage": float(np.mean(inside)),
        },
        "rows": rows,
        "fit": res.to_dict(),
    }


@pytest.fixture(scope="session")
def backtest_doc() -> dict[str, Any]:
    return make_backtest()


@pytest.fixture(scope="session")
def backtest_file(tmp_path_factory: pytest.TempPathFactory, backtest_doc: dict[str, Any]) -> Path:
    path = tmp_path_factory.mktemp("backtests") / "bt.json"
    path.write_text(json.dumps(backtest_doc, allow_nan=False))
    return path


@pytest.fixture(scope="session")
def built_report(
    tmp_path_factory: pytest.TempPathFactory,
    store_root: Path,
    chinchilla_fit: Path,
    backtest_file: Path,
) -> Any:
    """One full report (store + fit + backtest) shared by the structural tests."""
    from scalelab.report import build_report

    out = tmp_path_factory.mktemp("report") / "out"
    return build_report(out, store=store_root, fits=[chinchilla_fit], backtests=[backtest_file],
                        target_compute=5.76e23, bootstrap=30, seed=0)


def load_fit(path: Path) -> FitResult:
    return FitResult.load(path)
