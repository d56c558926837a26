"""Benchmark the fitting engine on the 240 Chinchilla points (Besiroglu et al. 2024's setting).

Measures, on this machine:
  * the full 4,500-start Hoffmann grid fitted by scalelab's vectorised engine (default
    successive halving on all cores, the same on one thread, and every start iterated to
    convergence);
  * the baselines: scipy L-BFGS-B (summed Huber) run one start at a time on the same grid,
    with the analytic gradient and with scipy's default finite-difference gradient; ``--full`` runs all 4,500 starts, otherwise a random subset is timed and the
    per-start time scaled to 4,500 (the output says which);
  * a 1,000-resample bootstrap.

Writes bench-results/fit.json and prints a table. Run: ``nox -s bench`` or
``python benchmarks/bench_fit.py [--full] [--subset 300]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import optimize

import scalelab
from scalelab.fit.objectives import Huber
from scalelab.fit.parametrization import Parametrization
from scalelab.fit.problem import Problem
from scalelab.laws import Chinchilla
from scalelab.store import read_table

X = {"N": "params_N", "D": "tokens_D"}
WHERE = "excluded_by_epoch == 0"
EPOCH_OBJECTIVE = 0.0010183


def _problem() -> Problem:
    table = read_table("chinchilla").where(WHERE)
    law = Chinchilla()
    data = {"N": table.numeric("params_N"), "D": table.numeric("tokens_D")}
    y = table.numeric("loss")
    return Problem(law, data, y, Huber(delta=1e-3), Parametrization(law), np.ones(len(y)))


def time_engine(repeats: int, keep: float | None, workers: int | None = None) -> dict[str, float]:
    times, objs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = scalelab.fit("chinchilla", "chinchilla", x=X, y="loss", where=WHERE, keep=keep, workers=workers)
        times.append(time.perf_counter() - t0)
        objs.append(res.objective)
    return {"seconds_median": statistics.median(times), "seconds_min": min(times), "objective": min(objs)}


def time_baseline(subset: int | None, seed: int, *, analytic: bool) -> dict[str, float | int | bool]:
    prob = _problem()
    law = prob.law
    u_grid = prob.param.to_internal(law.start_grid(prob.X, prob.y))
    if subset is not None and subset < len(u_grid):
        idx = np.random.default_rng(seed).choice(len(u_grid), subset, replace=False)
        u_run = u_grid[idx]
    else:
        u_run = u_grid
    lo, hi = prob.param.internal_bounds()

    def fg(u: np.ndarray) -> tuple[float, np.ndarray]:
        r = prob.residuals(u[None])[0]
        j = prob.jacobian(u[None])[0]
        val = float(np.sum(prob.objective.rho(r)))
        return (val if np.isfinite(val) else 1e300), j.T @ prob.objective.psi(r)

    def f_only(u: np.ndarray) -> float:
        return fg(u)[0]

    best = np.inf
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        for u0 in u_run:
            if analytic:
                sol = optimize.minimize(fg, u0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi, strict=True)))
            else:  # scipy's default finite-difference gradient, as replication code often does
                sol = optimize.minimize(f_only, u0, method="L-BFGS-B", bounds=list(zip(lo, hi, strict=True)))
            best = min(best, float(sol.fun))
    elapsed = time.perf_counter() - t0
    return {
        "starts_run": len(u_run),
        "seconds_measured": elapsed,
        "seconds_for_4500": elapsed * len(u_grid) / len(u_run),
        "extrapolated": len(u_run) < len(u_grid),
        "objective": best,
    }


def time_bootstrap(n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    res = scalelab.fit("chinchilla", "chinchilla", x=X, y="loss", where=WHERE, starts="grid")
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    res_b = scalelab.fit("chinchilla", "chinchilla", x=X, y="loss", where=WHERE, bootstrap=n, seed=0)
    total = time.perf_counter() - t0
    return {
        "resamples": n,
        "seconds_total_fit_plus_bootstrap": total,
        "seconds_bootstrap_only": total - t_fit,
        "failed": res_b.bootstrap_failed,
        "alpha_ci": list(res_b.params["alpha"].ci),
        "objective": res.objective,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="run the baseline on all 4,500 starts (~minutes)")
    ap.add_argument("--subset", type=int, default=300, help="baseline starts timed when not --full")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench-results/fit.json")
    args = ap.parse_args()

    scalelab.fit("power_law", {"x": [1, 2, 3, 4, 5], "y": [5, 4, 3.5, 3.2, 3.1]}, y="y")  # warm imports
    out: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
        "engine_default_keep_0.1": time_engine(args.repeats, 0.1),
        "engine_default_one_thread": time_engine(args.repeats, 0.1, workers=1),
        "engine_all_starts_to_convergence": time_engine(1, None),
        "baseline_scipy_lbfgsb_one_at_a_time": time_baseline(None if args.full else args.subset, 0, analytic=True),
        "baseline_scipy_lbfgsb_fd_gradient_one_at_a_time": time_baseline(
            None if args.full else args.subset, 0, analytic=False
        ),
        "bootstrap_1000": time_bootstrap(1000),
    }
    eng = out["engine_default_keep_0.1"]["seconds_median"]  # type: ignore[index]
    base = out["baseline_scipy_lbfgsb_one_at_a_time"]["seconds_for_4500"]  # type: ignore[index]
    base_fd = out["baseline_scipy_lbfgsb_fd_gradient_one_at_a_time"]["seconds_for_4500"]  # type: ignore[index]
    out["speedup_vs_baseline"] = base / eng
    out["speedup_vs_fd_gradient_baseline"] = base_fd / eng
    out["reaches_epoch_objective"] = out["engine_default_keep_0.1"]["objective"] <= EPOCH_OBJECTIVE  # type: ignore[index]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
