"""Backtest: predict Pythia 6.9B and 12B zero-shot accuracy from the models up to 1.4B.

Data: ../shared/data/pythia_v1_evals_by_checkpoint.csv (EleutherAI/pythia, Apache-2.0), the
standard (not deduplicated) models, zero-shot, metric ``acc``, tasks lambada_openai, piqa,
arc_easy, sciq and winogrande. A model's final accuracy is its value at the last checkpoint
(step 143,000, 300B tokens).

The method is chosen without looking at 6.9B / 12B: ``--dev`` fits every candidate on the
models up to 410M and scores it on 1B and 1.4B; the lowest mean absolute error wins, and the
constants below record that choice. The default run fits the chosen method on 70M-1.4B and
predicts 6.9B and 12B, beside the baseline (a chance-floored sigmoid in log N fitted to the
five final accuracies).

    python experiments/backtests/pythia_downstream.py --dev
    python experiments/backtests/pythia_downstream.py            # table in docs/downstream.md
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.fit import fit
from scalelab.predict.downstream import (
    checkpoint_table,
    final_values,
    fit_direct,
    mean_absolute_error,
    score_targets,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "pythia_v1_evals_by_checkpoint.csv"

#: task -> chance accuracy (lambada_openai is open-ended next-word prediction: chance 0)
TASKS = {"lambada_openai": 0.0, "piqa": 0.5, "arc_easy": 0.25, "sciq": 0.25, "winogrande": 0.5}
TRAIN = "model in ['pythia-70m', 'pythia-160m', 'pythia-410m', 'pythia-1b', 'pythia-1.4b']"
TARGETS = "model in ['pythia-6.9b', 'pythia-12b']"
DEV_TRAIN = "model in ['pythia-70m', 'pythia-160m', 'pythia-410m']"
DEV_TARGETS = "model in ['pythia-1b', 'pythia-1.4b']"

#: the method --dev selected (lowest dev MAE), used for the 6.9B / 12B prediction
CHOSEN = {"law": "gompertz", "N": "params_nonembedding", "skip": 0.5}
COMMON = {"run": "model", "step": "step", "D": "tokens", "smooth": 1, "loss": "mse_linear"}


def tables() -> dict[str, Any]:
    """One checkpoint table per task: model, step, sizes, tokens, acc."""
    return {
        task: checkpoint_table(
            DATA,
            columns={"acc": "acc"},
            index=("model", "step"),
            keep=("params_total", "params_nonembedding", "tokens"),
            where=f"num_fewshot == 0 and deduped == 0 and task == '{task}'",
        )
        for task in TASKS
    }


def direct(table: Any, task: str, *, law: str, N: str, skip: float, train: str,
           bootstrap: int, seed: int = 0) -> Any:
    return fit_direct(table, accuracy="acc", chance=TASKS[task], N=N, law=law, skip=skip,
                      where=train, bootstrap=bootstrap, seed=seed, meta={"task": task},
                      **COMMON)


def dev(tabs: dict[str, Any]) -> None:
    print("method selection: fit models <= 410M, predict the final accuracy of 1B and 1.4B\n")
    print("| law | N | skip | dev MAE (points) |\n|---|---|---|---|")
    results = []
    for law, n_col, skip in itertools.product(
        ["sigmoid", "gompertz", "gompertz_nd"], ["params_total", "params_nonembedding"],
        [0.0, 0.5, 0.75],
    ):
        scores = []
        for task, tab in tabs.items():
            chain = direct(tab, task, law=law, N=n_col, skip=skip, train=DEV_TRAIN, bootstrap=0)
            scores += score_targets(chain, tab, accuracy="acc", N=n_col, D="tokens", run="model",
                                    where=DEV_TARGETS, window=1, intervals=False)
        mae = 100 * mean_absolute_error(scores)
        results.append((mae, law, n_col, skip))
        print(f"| {law} | {n_col} | {skip} | {mae:.2f} |", flush=True)
    best = min(results)
    print(f"\nselected: {best[1]}, N = {best[2]}, skip {best[3]} (dev MAE {best[0]:.2f} points)")


def baseline(tabs: dict[str, Any], n_col: str, *, ceiling_one: bool = False
             ) -> list[tuple[str, str, float, float]]:
    """Chance-floored sigmoid in log N on the five final accuracies, least squares.

    The ceiling is fitted in [chance, 1], or fixed at 1 with ``ceiling_one``.
    """
    out = []
    for task, tab in tabs.items():
        train = final_values(tab, y="acc", run="model", window=1, keep=(n_col,), where=TRAIN)
        ch = TASKS[task]
        fixed = {"floor": ch, "ceiling": 1.0} if ceiling_one else {"floor": ch}
        bounds = {} if ceiling_one else {"ceiling": (ch, 1.0)}
        res = fit("sigmoid", {"x": train.numeric(n_col), "acc": train.numeric("acc")}, y="acc",
                  loss="mse_linear", fixed=fixed, bounds=bounds)
        targets = final_values(tab, y="acc", run="model", window=1, keep=(n_col,), where=TARGETS)
        pred = res.predict(x=targets.numeric(n_col)).mean
        for model, a, p in zip(targets.column("model"), targets.numeric("acc"), pred, strict=True):
            out.append((task, str(model), float(a), float(p)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dev", action="store_true", help="run the method selection on 1B / 1.4B")
    ap.add_argument("--bootstrap", type=int, default=200, help="resamples per fit (default 200)")
    ap.add_argument("--save-chains", metavar="DIR", help="write each task's chain JSON here")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    t0 = time.perf_counter()
    tabs = tables()
    if args.dev:
        dev(tabs)
        print(f"\n({time.perf_counter() - t0:.0f} s)")
        return 0

    law, n_col, skip = CHOSEN["law"], CHOSEN["N"], CHOSEN["skip"]
    print(f"direct: {law} over (N = {n_col}, D = tokens), checkpoints after the first {skip:.0%}"
          f" of each model 70M-1.4B, floor = chance, least squares; {args.bootstrap} bootstrap"
          " resamples by model; 95% intervals include observation noise\n")
    print("| task | model | actual | baseline | direct [95% interval] | |error| |")
    print("|---|---|---|---|---|---|")
    base = {(t, m): p for t, m, _, p in baseline(tabs, n_col)}
    all_scores = []
    for task, tab in tabs.items():
        chain = direct(tab, task, law=law, N=n_col, skip=skip, train=TRAIN,
                       bootstrap=args.bootstrap)
        if args.save_chains:
            chain.save(Path(args.save_chains) / f"pythia_{task}.json")
        scores = score_targets(chain, tab, accuracy="acc", N=n_col, D="tokens", run="model",
                               where=TARGETS, window=1)
        all_scores += scores
        for s in scores:
            print(f"| {task} | {s.run.removeprefix('pythia-')} | {s.actual:.3f} | "
                  f"{base[(task, s.run)]:.3f} | {s.predicted:.3f} [{s.lower:.3f}, {s.upper:.3f}] |"
                  f" {100 * abs(s.error):.1f} |")
    mae = 100 * mean_absolute_error(all_scores)
    inside = sum(s.inside for s in all_scores)
    print(f"\nMAE direct: {mae:.2f} points; intervals cover {inside} of {len(all_scores)}")
    print("\n| baseline: sigmoid in log N on final accuracies | N = params_nonembedding | "
          "N = params_total |\n|---|---|---|")
    for label, one in (("ceiling fitted in [chance, 1]", False), ("ceiling fixed at 1", True)):
        row = []
        for col in ("params_nonembedding", "params_total"):
            b = baseline(tabs, col, ceiling_one=one)
            row.append(100 * float(np.mean([abs(p - a) for _, _, a, p in b])))
        print(f"| {label} | {row[0]:.2f} | {row[1]:.2f} |")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
