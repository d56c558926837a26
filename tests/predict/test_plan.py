"""Compute-optimal plans with intervals, on the Chinchilla fit, and their bad input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import scalelab
from scalelab.errors import DataError, LawError
from scalelab.fit import FitResult
from scalelab.laws import make_law
from scalelab.predict.intervals import extrapolation_noise, fit_rows
from scalelab.predict.plan import compute_optimal_plan

X = {"N": "params_N", "D": "tokens_D"}
WHERE = "excluded_by_epoch == 0"
CHINCHILLA_C = 5.88e23


@pytest.fixture(scope="module")
def boot_fit() -> FitResult:
    return scalelab.fit(
        "chinchilla", "chinchilla", x=X, y="loss", where=WHERE, bootstrap=1000, seed=0
    )


def test_chinchilla_plan_at_chinchillas_budget(boot_fit: FitResult) -> None:
    plan = compute_optimal_plan(boot_fit, CHINCHILLA_C)
    assert plan.draws == "bootstrap" and plan.noise.method == "fit-rmse"
    b = plan.budgets[0]
    # measured: N 7.40e10 [5.20e10, 1.14e11], D 1.33e12 [8.57e11, 1.89e12],
    # 17.9 tokens/param [7.5, 36.3], loss 1.973 [1.937, 2.012]
    assert b.N.value == pytest.approx(7.397e10, rel=0.01)
    assert b.tokens_per_param.value == pytest.approx(17.9, abs=0.2)
    assert b.tokens_per_param.low == pytest.approx(7.5, abs=0.5)
    assert b.tokens_per_param.high == pytest.approx(36.3, abs=2.0)
    assert 6 * b.N.value * b.D.value == pytest.approx(CHINCHILLA_C, rel=1e-9)
    assert b.loss.value == pytest.approx(1.973, abs=0.002)
    assert b.loss.low == pytest.approx(1.937, abs=0.004)
    assert b.loss.high == pytest.approx(2.012, abs=0.004)
    # the allocation intervals are the bootstrap's, as in FitResult.compute_optimal
    ref = boot_fit.compute_optimal(CHINCHILLA_C)
    assert (b.N.low, b.N.high) == pytest.approx(ref["N"].ci, rel=1e-9)
    assert (b.D.low, b.D.high) == pytest.approx(ref["D"].ci, rel=1e-9)


def test_loss_interval_adds_observation_noise(boot_fit: FitResult) -> None:
    b = compute_optimal_plan(boot_fit, CHINCHILLA_C).budgets[0]
    law_only = boot_fit.predict(N=b.N.value, D=b.D.value)
    assert b.loss.low < law_only.lower[0] and law_only.upper[0] < b.loss.high
    # noise grown with the distance beyond the data widens it further (measured [1.907, 2.044])
    noise = extrapolation_noise(boot_fit, "chinchilla")
    grown = compute_optimal_plan(boot_fit, CHINCHILLA_C, noise=noise).budgets[0]
    assert grown.loss.low == pytest.approx(1.907, abs=0.006)
    assert grown.loss.high == pytest.approx(2.044, abs=0.006)


def test_extrapolation_warning_in_multiples_of_the_fitted_range(boot_fit: FitResult) -> None:
    b = compute_optimal_plan(boot_fit, CHINCHILLA_C).budgets[0]
    assert b.extrapolation.above["N"] == pytest.approx(4.57, abs=0.01)
    assert "N up to 4.57x the largest fitted N (1.62e+10)" in b.extrapolation.message()
    # the largest fitted run used 1.30e22 FLOPs (the fit records it): the plan is 45x beyond it
    assert not b.extrapolation.compute_is_bound
    assert b.extrapolation.above["C"] == pytest.approx(45.4, abs=0.1)
    assert "C up to 45.4x the largest fitted compute (1.3e+22)" in b.extrapolation.message()
    rows = fit_rows(boot_fit, "chinchilla")
    inputs = {k: rows.numeric(c) for k, c in boot_fit.inputs.items()}
    exact = compute_optimal_plan(boot_fit, CHINCHILLA_C, fit_inputs=inputs).budgets[0]
    assert exact.extrapolation.above["C"] == pytest.approx(b.extrapolation.above["C"], rel=1e-12)
    # a fit file from before the compute range was recorded only bounds it
    old = dataclasses.replace(boot_fit, data={k: v for k, v in boot_fit.data.items() if k != "compute_range"})
    bound = compute_optimal_plan(old, CHINCHILLA_C).budgets[0].extrapolation
    assert bound.compute_is_bound and "at least" in bound.message()
    inside = compute_optimal_plan(boot_fit, 1e20, fit_inputs=inputs).budgets[0]
    assert not inside.extrapolation.outside


def test_many_budgets_and_json(boot_fit: FitResult) -> None:
    plan = compute_optimal_plan(boot_fit, [1e21, CHINCHILLA_C, 1e25], coverage=0.9)
    ns = [b.N.value for b in plan.budgets]
    assert ns == sorted(ns) and plan.coverage == 0.9
    d = plan.to_dict()
    assert [p["compute"] for p in d["plans"]] == [1e21, CHINCHILLA_C, 1e25]
    assert set(d["plans"][0]) == {"compute", "N", "D", "tokens_per_param", "loss", "extrapolation"}
    assert "compute 5.88e+23 FLOPs" in plan.report()


def test_plan_without_bootstrap_uses_hessian_draws() -> None:
    res = scalelab.fit("chinchilla", "chinchilla", x=X, y="loss", where=WHERE, starts=200)
    b = compute_optimal_plan(res, CHINCHILLA_C)
    assert b.draws == "hessian-normal"
    iv = b.budgets[0].tokens_per_param
    assert iv.low < iv.value < iv.high and math.isfinite(iv.high)


def test_data_constrained_is_planned_with_unlimited_unique_data() -> None:
    p = dict(
        E=math.exp(0.6254804),
        A=math.exp(6.255414),
        B=math.exp(7.3049974),
        alpha=0.3526596,
        beta=0.3526596,
        R_D_star=15.387756,
        R_N_star=5.309743,
    )
    law = make_law("data_constrained")
    rng = np.random.default_rng(0)
    n = np.repeat(np.logspace(8, 9.5, 6), 6)
    d = np.tile(np.logspace(9, 11, 6), 6)
    u = d / np.tile([1, 1, 2, 4, 8, 16], 6)
    y = law(N=n, D=d, U=u, **p) * np.exp(0.005 * rng.standard_normal(n.size))
    res = scalelab.fit(
        "data_constrained", {"N": n, "D": d, "U": u, "loss": y}, y="loss", starts=100
    )
    b = compute_optimal_plan(res, 1e21).budgets[0]
    assert 6 * b.N.value * b.D.value == pytest.approx(1e21, rel=1e-6)
    expected = law.evaluate(
        res.theta,
        {"N": np.array([b.N.value]), "D": np.array([b.D.value]), "U": np.array([b.D.value])},
    )[0]
    assert b.loss.value == pytest.approx(expected, rel=1e-12)
    assert b.loss.low < b.loss.value < b.loss.high


def test_law_without_allocation_is_refused() -> None:
    rng = np.random.default_rng(0)
    x = np.logspace(6, 10, 30)
    y = make_law("power_law")(x=x, E=1.7, A=400.0, alpha=0.45) * np.exp(
        0.01 * rng.standard_normal(30)
    )
    res = scalelab.fit("power_law", {"x": x, "loss": y}, y="loss")
    with pytest.raises(
        LawError,
        match=r"plan needs a law with a compute-optimal allocation .* "
        r"this is a fit of 'power_law' \(inputs x\)",
    ):
        compute_optimal_plan(res, 1e21)


@pytest.mark.parametrize("bad", [0.0, -1e21, math.nan, math.inf, "lots", []])
def test_budget_must_be_a_positive_number(boot_fit: FitResult, bad: object) -> None:
    with pytest.raises(DataError, match=r"compute|budget"):
        compute_optimal_plan(boot_fit, bad)  # type: ignore[arg-type]
