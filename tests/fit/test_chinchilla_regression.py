"""Pin the Chinchilla refit of Besiroglu et al. 2024 (Epoch AI) on the bundled points."""

from __future__ import annotations

import numpy as np
import pytest

import scalelab
from scalelab.fit import FitResult

X = {"N": "params_N", "D": "tokens_D"}
WHERE = "excluded_by_epoch == 0"


@pytest.fixture(scope="module")
def grid_fit() -> FitResult:
    return scalelab.fit("chinchilla", "chinchilla", x=X, y="loss", where=WHERE, starts="grid")


@pytest.fixture(scope="module")
def boot_fit() -> FitResult:
    return scalelab.fit(
        "chinchilla", "chinchilla", x=X, y="loss", where=WHERE, bootstrap=1000, seed=0
    )


def test_reproduces_epoch_optimum(grid_fit: FitResult) -> None:
    p = grid_fit.values()
    assert grid_fit.n_points == 240
    assert grid_fit.options["n_starts"] >= 4500
    assert grid_fit.converged
    # the objective the full Hoffmann grid reaches (Besiroglu et al. 2024's refit)
    assert grid_fit.objective <= 0.0010183
    assert p["E"] == pytest.approx(1.817, abs=0.002)
    assert 477.5 <= p["A"] <= 482.5
    assert 2085 <= p["B"] <= 2145
    assert 0.3470 <= p["alpha"] <= 0.3480
    assert 0.3655 <= p["beta"] <= 0.3675
    assert grid_fit.derived["a"].value == pytest.approx(0.513, abs=0.002)


def test_bootstrap_intervals_match_epoch(boot_fit: FitResult) -> None:
    epoch = {"E": (1.769, 1.871), "alpha": (0.317, 0.373), "beta": (0.331, 0.415)}
    assert boot_fit.interval_method == "bootstrap-percentile"
    assert len(boot_fit.bootstrap) >= 990
    for name, (lo, hi) in epoch.items():
        est = boot_fit.params[name]
        width = hi - lo
        assert est.ci_low == pytest.approx(lo, abs=0.1 * width), name
        assert est.ci_high == pytest.approx(hi, abs=0.1 * width), name
        assert est.ci_low < est.value < est.ci_high


def test_compute_optimal_tokens_per_parameter(boot_fit: FitResult) -> None:
    plan = boot_fit.compute_optimal(5.88e23)
    # Epoch's estimate gives ~18 tokens per parameter at Chinchilla's budget
    assert plan["tokens_per_param"].value == pytest.approx(18.0, abs=0.7)
    assert plan["tokens_per_param"].ci_low < 18 < plan["tokens_per_param"].ci_high
    n, d = plan["N"].value, plan["D"].value
    assert 6 * n * d == pytest.approx(5.88e23, rel=1e-9)


def test_hessian_errors_are_finite_and_positive(grid_fit: FitResult) -> None:
    for name in ("E", "A", "B", "alpha", "beta"):
        se = grid_fit.params[name].stderr
        assert np.isfinite(se) and se > 0
        lo, hi = grid_fit.params[name].ci
        assert lo < grid_fit.params[name].value < hi


def test_prediction_at_chinchilla(boot_fit: FitResult) -> None:
    pred = boot_fit.predict(N=70e9, D=1.4e12)
    assert pred.lower[0] < pred.mean[0] < pred.upper[0]
    assert pred.mean[0] == pytest.approx(1.97, abs=0.01)
    narrow = boot_fit.predict(N=70e9, D=1.4e12, coverage=0.5)
    assert pred.lower[0] < narrow.lower[0] < narrow.upper[0] < pred.upper[0]


def test_compute_optimal_with_unbounded_bootstrap_optima(boot_fit: FitResult) -> None:
    """A refit whose optimum is infinite makes the interval's end infinite, without a warning."""
    import dataclasses
    import warnings

    draws = np.array(boot_fit.bootstrap, dtype=float, copy=True)
    names = list(boot_fit.law.param_names)
    beta = names.index("beta")
    draws[: max(1, len(draws) // 10), beta] = 0.0  # no data term: the optimum N runs off to inf
    varied = dataclasses.replace(boot_fit, bootstrap=draws)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = varied.compute_optimal(5.88e23)
    best = boot_fit.compute_optimal(5.88e23)
    assert plan["N"].value == best["N"].value  # the best fit is unchanged
    assert np.isfinite(plan["N"].ci_low) and plan["N"].ci_high == np.inf
