"""Behaviour of individual laws: published check values, allocations, shapes of real curves."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import least_squares

from scalelab.errors import LawError
from scalelab.laws import (
    BrokenPowerLaw,
    Chinchilla,
    DataConstrained,
    DataMixing,
    Kaplan,
    Law,
    PowerLaw,
    Sigmoid,
    make_law,
)
from scalelab.laws._allocation import numeric_compute_optimal

DATA = Path("/work/shared/data")


@pytest.fixture(scope="module")
def published() -> dict:
    return json.loads((DATA / "published_fits.json").read_text())


def _log_fit(law: Law, X: dict[str, np.ndarray], y: np.ndarray, starts: np.ndarray, keep: int = 8):
    """Least squares on log residuals from the ``keep`` best starts (log params in log space).

    Test helper only (the fitting engine lives in scalelab.fit); returns (theta, rms).
    """
    is_log = np.array([p.log for p in law.params])
    lo = np.array([math.log(max(p.lower, 1e-300)) if p.log else p.lower for p in law.params])
    hi = np.array([math.log(p.upper) if p.log else p.upper for p in law.params])

    def natural(s: np.ndarray) -> np.ndarray:
        return np.where(is_log, np.exp(s), s)

    def residuals(s: np.ndarray) -> np.ndarray:
        return law.log_evaluate(natural(s), X) - np.log(y)

    def jac(s: np.ndarray) -> np.ndarray:
        theta = natural(s)
        return law.log_jacobian(theta, X) * np.where(is_log, theta, 1.0)

    to_s = np.where(is_log, np.log(np.maximum(starts, 1e-300)), starts)
    with np.errstate(all="ignore"):
        sse = np.sum((law.log_evaluate(starts, X) - np.log(y)) ** 2, axis=-1)
    best = None
    for i in np.argsort(np.where(np.isfinite(sse), sse, np.inf))[:keep]:
        s0 = np.clip(to_s[i], lo + 1e-9, hi - 1e-9)
        res = least_squares(residuals, s0, jac=jac, bounds=(lo, hi))
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    return natural(best.x), math.sqrt(2 * best.cost / y.size)


# ----------------------------------------------------------------------------- data-constrained
MUENNIGHOFF_POINTS = [
    ((6.34e9, 242e9, 25e9), 2.2256440889984477),
    ((8.67e9, 178e9, 25e9), 2.2269634075087867),
]


def _muennighoff_theta(published: dict) -> np.ndarray:
    p = published["datablations_muennighoff2023_data_constrained"]["params"]
    return np.array(
        [
            math.exp(p["log_E"]),
            math.exp(p["log_A"]),
            math.exp(p["log_B"]),
            p["alpha"],
            p["beta"],
            p["R_D_star"],
            p["R_N_star"],
        ]
    )


def test_data_constrained_reproduces_readme_check_values(published: dict) -> None:
    law = DataConstrained()
    theta = _muennighoff_theta(published)
    checks = published["datablations_muennighoff2023_data_constrained"]["readme_check_values"]
    assert sorted(checks.values()) == sorted(v for _, v in MUENNIGHOFF_POINTS)
    n, d, u = (np.array(col) for col in zip(*(pt for pt, _ in MUENNIGHOFF_POINTS), strict=True))
    got = law.evaluate(theta, {"N": n, "D": d, "U": u})
    np.testing.assert_allclose(got, [v for _, v in MUENNIGHOFF_POINTS], rtol=0, atol=1e-6)
    assert got[0] < got[1]  # "many epochs, fewer params" is the better model (Figure 1)
    named = law(N=6.34e9, D=242e9, U=25e9, **dict(zip(law.param_names, theta, strict=True)))
    assert abs(float(named[0]) - 2.2256440889984477) < 1e-6


def test_data_constrained_limits(published: dict) -> None:
    law = DataConstrained()
    theta = _muennighoff_theta(published)
    chin = Chinchilla()
    # one epoch and N below the compute-optimal size for D: exactly Chinchilla
    n, d = np.array([1e8, 1e9, 3e9]), np.array([2e11, 5e11, 1e12])
    np.testing.assert_allclose(
        law.evaluate(theta, {"N": n, "D": d, "U": d}),
        chin.evaluate(theta[:5], {"N": n, "D": d}),
        rtol=1e-12,
    )
    # repeating data helps less than fresh data, and saturates at U (1 + R_D*) tokens
    rep = law.evaluate(
        theta, {"N": np.full(3, 1e9), "D": np.full(3, 4e11), "U": np.array([4e11, 1e11, 1e10])}
    )
    assert rep[0] < rep[1] < rep[2]
    u = 1e10  # N_opt(U) ~ 5e8 with these parameters, so N = 1e8 is not capped
    far = law.evaluate(theta, {"N": np.array([1e8]), "D": np.array([1e16]), "U": np.array([u])})
    cap = chin.evaluate(theta[:5], {"N": np.array([1e8]), "D": np.array([u * (1 + theta[5])])})
    np.testing.assert_allclose(far, cap, rtol=1e-9)
    # excess parameters beyond N_opt(U) are worth less than under Chinchilla
    big_n = {"N": np.array([1e12]), "D": np.array([1e11]), "U": np.array([1e11])}
    assert law.evaluate(theta, big_n)[0] > chin.evaluate(theta[:5], big_n)[0]


def test_data_constrained_compute_optimal_matches_readme_grid(published: dict) -> None:
    law = DataConstrained()
    theta = _muennighoff_theta(published)
    budget = 6 * 8.67e9 * 178e9
    # README: "-> 227B tokens, 9.1 epochs, 6.8B parameters" (grid search over reallocations)
    opt = law.compute_optimal(theta, budget, unique_tokens=25e9)
    assert float(opt["D"]) == pytest.approx(227e9, rel=0.01)
    assert float(opt["N"]) == pytest.approx(6.8e9, rel=0.01)
    assert float(opt["loss"]) < 2.2269634075087867
    # batched over theta and budget
    both = law.compute_optimal(
        np.stack([theta, theta]), np.array([budget, 10 * budget]), unique_tokens=25e9
    )
    assert both["N"].shape == (2,) and both["N"][1] > both["N"][0]
    # with unlimited unique data the allocation is Chinchilla's closed form
    free = law.compute_optimal(theta, budget)
    closed = Chinchilla().compute_optimal(theta[:5], budget)
    assert float(free["N"]) == pytest.approx(float(closed["N"]), rel=1e-6)
    with pytest.raises(LawError):
        law.compute_optimal(theta, budget, unique_tokens=0.0)


# ----------------------------------------------------------------------------- Kaplan
def test_kaplan_matches_hand_computation(published: dict) -> None:
    p = published["kaplan2020"]["params"]
    law = Kaplan()
    theta = np.array([p["N_c"], p["D_c"], p["alpha_N"], p["alpha_D"]])
    n, d = 1e9, 1e10
    by_hand = ((8.8e13 / n) ** (0.076 / 0.095) + 5.4e13 / d) ** 0.095
    assert by_hand == pytest.approx(2.4838, abs=1e-4)
    got = law.evaluate(theta, {"N": np.array([n]), "D": np.array([d])})
    assert float(got[0]) == pytest.approx(by_hand, rel=1e-12)
    # infinite data leaves the model-size law L(N) = (Nc / N)^alpha_N (Kaplan Eq. 1.1)
    huge_d = law.evaluate(theta, {"N": np.array([1e9]), "D": np.array([1e40])})
    assert float(huge_d[0]) == pytest.approx((8.8e13 / 1e9) ** 0.076, rel=1e-9)


def test_kaplan_compute_optimal_matches_closed_form(published: dict) -> None:
    p = published["kaplan2020"]["params"]
    law = Kaplan()
    theta = np.array([p["N_c"], p["D_c"], p["alpha_N"], p["alpha_D"]])
    budgets = np.array([1e19, 1e21, 1e23])
    opt = law.compute_optimal(np.broadcast_to(theta, (3, 4)), budgets)
    # minimise (Nc/N)^q + 6 Dc N / C, q = alpha_N / alpha_D: N^(q+1) = q Nc^q C / (6 Dc)
    q = p["alpha_N"] / p["alpha_D"]
    n_star = (q * p["N_c"] ** q * budgets / (6 * p["D_c"])) ** (1 / (q + 1))
    np.testing.assert_allclose(opt["N"], n_star, rtol=1e-6)
    np.testing.assert_allclose(opt["N"] * opt["D"] * 6, budgets, rtol=1e-12)
    slope = np.diff(np.log(opt["N"])) / np.diff(np.log(budgets))
    np.testing.assert_allclose(slope, law.derived(theta)["a"], rtol=1e-6)


# ----------------------------------------------------------------------------- Chinchilla allocation
def test_chinchilla_tokens_per_parameter_at_chinchilla_compute(published: dict) -> None:
    law = Chinchilla()
    budget = 5.88e23  # 6 x 70B params x 1.4T tokens
    ep = published["chinchilla_epoch_replication_besiroglu2024"]["estimate"]
    assert ep == {"A": 482.00572, "B": 2085.43420, "E": 1.81686, "alpha": 0.34781, "beta": 0.36585}
    epoch = np.array([ep["E"], ep["A"], ep["B"], ep["alpha"], ep["beta"]])
    opt = law.compute_optimal(epoch, budget)
    assert float(opt["D"] / opt["N"]) == pytest.approx(18.25, rel=0.01)
    h = published["chinchilla_hoffmann2022_approach3"]["unrounded_log_params_as_in_epoch_notebook"]
    hoff = np.array(
        [math.exp(h["log_E"]), math.exp(h["log_A"]), math.exp(h["log_B"]), h["alpha"], h["beta"]]
    )
    opt = law.compute_optimal(hoff, budget)
    assert float(opt["D"] / opt["N"]) == pytest.approx(59.0, rel=0.01)


def test_numeric_compute_optimal_agrees_with_chinchilla_closed_form() -> None:
    law = Chinchilla()
    theta = np.array(
        [
            [1.69, 406.4, 410.7, 0.34, 0.28],
            [1.81686, 482.00572, 2085.4342, 0.34781, 0.36585],
            [2.0, 1e4, 1e3, 0.5, 0.3],
        ]
    )
    budgets = np.array([1e20, 5.88e23, 1e25])
    closed = law.compute_optimal(theta, budgets)
    numeric = numeric_compute_optimal(law, theta, budgets)
    for key in ("N", "D", "loss"):
        np.testing.assert_allclose(numeric[key], closed[key], rtol=1e-6)


# ----------------------------------------------------------------------------- broken power law
def _bnsl_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with open(DATA / "bnsl_4digit_addition.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    x = np.array([float(r["train_dataset_size"]) for r in rows])
    y = np.array([float(r["test_cross_entropy"]) for r in rows])
    fit = np.array([r["split"] == "fit" for r in rows])
    return x, y, fit


def test_bnsl_follows_the_sharp_break_a_power_law_cannot() -> None:
    x, y, fit = _bnsl_data()
    X, held = {"x": x[fit]}, {"x": x[~fit]}
    results = {}
    for law in (PowerLaw(), BrokenPowerLaw(breaks=1)):
        starts = np.vstack([law.guess(X, y[fit])[None], law.start_grid(X, y[fit])])
        theta, rms = _log_fit(law, X, y[fit], starts)
        extrap = np.abs(np.log(law.evaluate(theta, held) / y[~fit]))
        results[law.name] = (theta, rms, extrap)
    _, rms_pl, extrap_pl = results["power_law"]
    theta_b, rms_b, extrap_b = results["broken_power_law"]
    assert rms_pl > 0.1  # a plain power law misses the break by >10%
    assert rms_b < 0.01 and rms_b < rms_pl / 20
    assert np.max(extrap_b) < 0.05  # held-out points past the break within 5%
    assert np.min(extrap_pl) > 0.5
    d1 = theta_b[4]
    assert 500 < d1 < 700  # the break sits where the data turn down (~600 examples)
    # the data-driven guess alone already follows the break better than the best power law
    law = BrokenPowerLaw()
    g = law.guess(X, y[fit])
    assert np.sqrt(np.mean((law.log_evaluate(g, X) - np.log(y[fit])) ** 2)) < rms_pl / 2


def test_bnsl_reduces_to_power_law_and_two_breaks() -> None:
    x = {"x": np.logspace(0, 6, 50)}
    one, two, pl = BrokenPowerLaw(), BrokenPowerLaw(breaks=2), PowerLaw()
    assert two.param_names == ("a", "b", "c0", "c1", "d1", "f1", "c2", "d2", "f2")
    assert two.config() == {"breaks": 2} and make_law("broken_power_law", breaks=2).n_params == 9
    # c1 = 0: no break, plain a + b x^-c0
    np.testing.assert_allclose(
        one.evaluate(np.array([0.3, 5.0, 0.4, 0.0, 1e3, 0.5]), x),
        pl.evaluate(np.array([0.3, 5.0, 0.4]), x),
        rtol=1e-12,
    )
    # far past both breaks the log-log slope of y - a is -(c0 + c1 + c2)
    theta = np.array([0.0, 5.0, 0.2, 0.5, 1e1, 0.1, 1.0, 1e3, 0.1])
    far = {"x": np.array([1e6, 1e7])}
    slope = np.diff(np.log(two.evaluate(theta, far))) / np.log(10.0)
    assert float(slope[0]) == pytest.approx(-1.7, rel=1e-3)
    assert float(two.derived(theta)["exponent_after_2"]) == pytest.approx(1.7)
    # very sharp breaks stay finite in log space
    sharp = np.array([0.1, 5.0, 0.2, 40.0, 1e3, 1e-4])
    assert np.all(np.isfinite(one.log_evaluate(sharp, x)))
    with pytest.raises(LawError):
        BrokenPowerLaw(breaks=3)
    with pytest.raises(LawError):
        make_law("broken_power_law", n_breaks=2)


# ----------------------------------------------------------------------------- sigmoid
def test_sigmoid_midpoint_semantics() -> None:
    law = Sigmoid()
    floor, ceiling, x0, width = 0.25, 0.85, 3e9, 0.7
    theta = np.array([floor, ceiling, x0, width])
    d = law.derived(theta)
    assert float(d["midpoint"]) == x0
    assert float(law.evaluate(theta, {"x": np.array([x0])})[0]) == pytest.approx(0.55, abs=1e-12)
    at = law.evaluate(theta, {"x": np.array([float(d["x10"]), float(d["x90"])])})
    np.testing.assert_allclose((at - floor) / (ceiling - floor), [0.1, 0.9], rtol=1e-12)
    # limits: floor at small x, ceiling at large x
    ends = law.evaluate(theta, {"x": np.array([1.0, 1e30])})
    np.testing.assert_allclose(ends, [floor, ceiling], atol=1e-9)
    # max slope in log x is at the midpoint: (ceiling - floor) / (4 width)
    h = 1e-5
    xs = np.array([x0 * math.exp(-h), x0 * math.exp(h)])
    slope = np.diff(law.evaluate(theta, {"x": xs}))[0] / (2 * h)
    assert slope == pytest.approx(float(d["max_slope"]), rel=1e-6)


def test_sigmoid_guess_on_noisy_accuracies() -> None:
    rng = np.random.default_rng(3)
    law = Sigmoid()
    x = np.logspace(7, 11, 60)
    truth = np.array([0.25, 0.8, 1e9, 0.5])
    y = np.clip(law.evaluate(truth, {"x": x}) + rng.normal(0, 0.02, x.size), 0.0, 1.0)
    g = law.guess({"x": x}, y)
    assert abs(math.log(g[2] / 1e9)) < math.log(1.5)  # midpoint within a factor 1.5
    assert g[0] == pytest.approx(0.25, abs=0.05) and g[1] == pytest.approx(0.8, abs=0.05)
    assert 0.2 < g[3] < 1.2
    grid = law.start_grid({"x": x}, y)
    assert np.any(grid[:, 1] == 1.0)  # accuracies in [0, 1]: a ceiling of 1 is tried
    # falling curve (accuracy against task loss): floor above ceiling
    loss = np.linspace(0.5, 3.0, 40)
    falling = np.array([0.9, 0.25, 1.5, 0.1])
    yf = law.evaluate(falling, {"x": loss})
    gf = law.guess({"x": loss}, yf)
    assert gf[0] > gf[1] and abs(math.log(gf[2] / 1.5)) < 0.1


# ----------------------------------------------------------------------------- data mixing
def test_data_mixing_with_k_domains() -> None:
    law = DataMixing(domains=3)
    assert law.inputs == ("r1", "r2", "r3")
    assert law.param_names == ("c", "k", "t1", "t2", "t3")
    assert law.config() == {"domains": 3} and make_law("data_mixing", domains=3).n_params == 5
    rng = np.random.default_rng(0)
    r = rng.dirichlet(np.ones(3), size=30)
    X = {f"r{j + 1}": r[:, j] for j in range(3)}
    theta = np.array([2.0, 0.8, -1.5, 0.3, 1.0])
    y = law.evaluate(theta, X)
    np.testing.assert_allclose(y, 2.0 + 0.8 * np.exp(r @ theta[2:]), rtol=1e-12)
    # proportions sum to 1: shifting every t_j and rescaling k leaves L unchanged
    shifted = np.array([2.0, 0.8 * math.exp(-0.7), -0.8, 1.0, 1.7])
    np.testing.assert_allclose(law.evaluate(shifted, X), y, rtol=1e-12)
    assert float(law.derived(theta)["best_domain"]) == 1.0
    # guess and grid let a local optimiser recover the mixture law from its own data
    starts = np.vstack([law.guess(X, y)[None], law.start_grid(X, y)])
    fitted, rms = _log_fit(law, X, y, starts, keep=4)
    assert rms < 1e-6
    test_r = rng.dirichlet(np.ones(3), size=10)
    X_test = {f"r{j + 1}": test_r[:, j] for j in range(3)}
    np.testing.assert_allclose(law.evaluate(fitted, X_test), law.evaluate(theta, X_test), rtol=1e-4)
    with pytest.raises(LawError):
        DataMixing(domains=0)
    with pytest.raises(LawError):
        law.prepare_inputs({"r1": [0.5], "r2": [0.5]})


# ----------------------------------------------------------------------------- power law
def test_power_law_guess_and_fit_recover_parameters() -> None:
    law = PowerLaw()
    x = np.logspace(6, 10, 25)
    truth = np.array([1.7, 400.0, 0.34])
    y = law.evaluate(truth, {"x": x})
    g = law.guess({"x": x}, y)
    assert 0 < g[0] < y.min() and 0.1 < g[2] < 1.0
    starts = np.vstack([g[None], law.start_grid({"x": x}, y)])
    fitted, rms = _log_fit(law, {"x": x}, y, starts, keep=4)
    assert rms < 1e-8
    np.testing.assert_allclose(fitted, truth, rtol=1e-4)
    with pytest.raises(LawError):
        law.guess({"x": x}, -y)
