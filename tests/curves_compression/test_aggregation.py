"""Aggregation views: the quantization model's power law and emergence from compounding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalelab.curves.aggregation import (
    compounding_table,
    fit_aggregate_power_law,
    logistic,
    logistic_task_width,
    per_step_accuracy,
    quantization_exponent,
    quantization_loss,
    skill_loss,
    task_accuracy,
    transition_width,
    zipf_exponent_from,
    zipf_frequencies,
)
from scalelab.errors import DataError

N_SKILLS = 20_000


def _window(p: np.ndarray, n: int = 60) -> np.ndarray:
    """Steps from 100x the first skill's transition to 1/100 of the last one's."""
    return np.exp(np.linspace(math.log(100 / p[0]), math.log(1 / (100 * p[-1])), n))


# ----------------------------------------------------------------------------- quantization model
def test_zipf_frequencies() -> None:
    p = zipf_frequencies(1000, 0.5)
    assert p.sum() == pytest.approx(1.0)
    assert p[0] / p[1] == pytest.approx(2**1.5)
    assert np.all(np.diff(p) < 0)
    with pytest.raises(DataError, match="alpha must be > 0"):
        zipf_frequencies(10, 0.0)
    with pytest.raises(DataError, match="positive integer"):
        zipf_frequencies(0, 1.0)


def test_exponent_relation_round_trips() -> None:
    for alpha in (0.25, 0.5, 1.0, 3.0):
        assert zipf_exponent_from(quantization_exponent(alpha)) == pytest.approx(alpha)
    assert quantization_exponent(1.0) == 0.5
    with pytest.raises(DataError, match="implies no Zipf exponent"):
        zipf_exponent_from(1.2)


def test_skill_loss_is_a_phase_change_in_log_steps() -> None:
    loss = skill_loss(np.array([1.0, 100.0, 1e4]), np.array([100.0]), 0.1, high=3.0, low=0.5)
    assert loss.shape == (1, 3)
    assert loss[0, 0] == pytest.approx(3.0, abs=1e-12)
    assert loss[0, 1] == pytest.approx(1.75)
    assert loss[0, 2] == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_quantization_model_recovers_alpha_over_alpha_plus_one(alpha: float) -> None:
    p = zipf_frequencies(N_SKILLS, alpha)
    steps = _window(p)
    loss = quantization_loss(steps, p, 1.0 / p, width=0.2, high=2.0, low=0.1)
    fit = fit_aggregate_power_law(steps, loss)
    assert fit.exponent == pytest.approx(alpha / (alpha + 1), abs=5e-3)
    assert fit.zipf_alpha == pytest.approx(alpha, rel=0.02)
    # With finitely many skills the fitted floor sits at or below the learned loss (0.1).
    assert 0.0 < fit.floor <= 0.1 + 1e-6
    assert fit.fit.law.name == "power_law"


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_quantization_model_with_jittered_skills_and_noise(alpha: float) -> None:
    # Transitions jittered log-normally (sd 0.5 in log step), widths 0.1-0.5, 0.5% noise on
    # the loss; 10 realizations. Measured (seeds 0-19): mean error -0.001 (alpha 0.5) and
    # +0.007 (alpha 1), sd 0.026, max |error| 0.064: the relation holds on average, and one
    # realization scatters by the luck of its few most frequent skills.
    target = alpha / (alpha + 1)
    errors = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        p = zipf_frequencies(N_SKILLS, alpha)
        tau = np.exp(0.5 * rng.standard_normal(N_SKILLS)) / p
        steps = _window(p)
        loss = quantization_loss(steps, p, tau, width=rng.uniform(0.1, 0.5, N_SKILLS),
                                 high=2.0, low=0.1)
        loss = loss * np.exp(0.005 * rng.standard_normal(loss.size))
        fit = fit_aggregate_power_law(steps, loss, seed=seed)
        assert fit.exponent_ci[0] < fit.exponent < fit.exponent_ci[1]
        assert fit.zipf_alpha_ci[0] < fit.zipf_alpha < fit.zipf_alpha_ci[1]
        errors.append(fit.exponent - target)
    assert abs(float(np.mean(errors))) < 0.02
    assert max(abs(e) for e in errors) < 0.08


def test_quantization_loss_rejects_bad_input() -> None:
    p = zipf_frequencies(5, 1.0)
    with pytest.raises(DataError, match="equal length"):
        quantization_loss([1.0], p, np.ones(4))
    with pytest.raises(DataError, match="transition steps"):
        quantization_loss([1.0], p, np.zeros(5))
    with pytest.raises(DataError, match="steps must be"):
        quantization_loss([0.0], p, np.ones(5))


# ----------------------------------------------------------------------------- compounding
def test_task_and_per_step_accuracy_are_inverse() -> None:
    p = np.linspace(0.0, 1.0, 11)
    assert np.allclose(per_step_accuracy(task_accuracy(p, 7), 7), p)
    assert float(task_accuracy(0.9, 10)) == pytest.approx(0.9**10)
    with pytest.raises(DataError, match="k must be >= 1"):
        task_accuracy(0.5, 0)
    with pytest.raises(DataError, match=r"lie in \[0, 1\]"):
        per_step_accuracy(1.5, 2)


def test_transition_width_of_a_logistic_is_2_ln_9_widths() -> None:
    x = np.logspace(-5, 5, 4001)
    tw = transition_width(x, logistic(x, 10.0, 0.7))
    assert tw.width == pytest.approx(2 * math.log(9) * 0.7, rel=1e-4)
    assert tw.middle == pytest.approx(10.0, rel=1e-4)
    assert tw.decades == pytest.approx(tw.width / math.log(10))


def test_compounding_sharpens_a_logistic_per_step_curve() -> None:
    x = np.logspace(-6, 10, 8001)
    ks = [1, 2, 5, 10, 30, 100, 1000]
    rows = compounding_table(x, logistic(x, 1.0, 1.0), ks)
    ratios = [r.width_ratio for r in rows]
    assert ratios[0] == pytest.approx(1.0)
    assert np.all(np.diff(ratios) < 0)  # narrower as k grows
    for r in rows:  # measured widths agree with the closed form
        assert r.width == pytest.approx(logistic_task_width(r.k), rel=1e-4)
        assert r.per_step_at_start == pytest.approx(0.1 ** (1 / r.k), rel=1e-4)
    # Measured magnitude: 0.839 at k=2, 0.727 at k=10, 0.702 at k=1000 (limit 0.702).
    assert ratios[1] == pytest.approx(0.839, abs=1e-3)
    assert ratios[3] == pytest.approx(0.727, abs=1e-3)
    assert ratios[-1] == pytest.approx(math.log(math.log(10) / math.log(1 / 0.9)) / (2 * math.log(9)),
                                       abs=1e-3)
    # ... and the transition moves later: the k=10 midpoint is at logit(0.5^(1/10)) = 2.63.
    assert math.log(rows[3].middle) == pytest.approx(math.log(0.5**0.1 / (1 - 0.5**0.1)), abs=1e-3)


def test_compounding_only_shifts_an_exponential_of_a_power_law() -> None:
    # Per-step accuracy exp(-x^-gamma): p^k = exp(-k x^-gamma) is the same curve shifted.
    gamma = 0.5
    x = np.logspace(-6, 14, 8001)
    rows = compounding_table(x, np.exp(-(x**-gamma)), [1, 10, 100])
    for r in rows:
        assert r.width_ratio == pytest.approx(1.0, abs=1e-4)
    shift = math.log(rows[2].middle) - math.log(rows[0].middle)
    assert shift == pytest.approx(math.log(100) / gamma, rel=1e-4)


def test_transition_width_rejects_bad_curves() -> None:
    x = np.array([1.0, 2.0, 3.0])
    with pytest.raises(DataError, match="does not rise"):
        transition_width(x, np.ones(3))
    with pytest.raises(DataError, match="strictly increasing"):
        transition_width(np.array([1.0, 1.0, 2.0]), np.array([0.0, 0.5, 1.0]))
    with pytest.raises(DataError, match="never reaches"):
        transition_width(x, np.array([0.0, 0.1, 0.2]), floor=0.0, ceiling=1.0)
    with pytest.raises(DataError, match="starts above"):
        transition_width(x, np.array([0.5, 0.9, 1.0]), floor=0.0, ceiling=1.0)


def test_a_step_like_curve_of_few_skills_fits_with_a_free_floor() -> None:
    # 16 skills learned in sharp steps: least_squares meets non-finite residuals on the way
    # (the floor pushed past the smallest loss) and used to stop the fit with "polish failed";
    # the polish now falls back to L-BFGS-B, which backtracks from such points
    p = zipf_frequencies(16, 0.4)
    steps = np.unique(np.round(np.logspace(0, 4, 40)))
    loss = quantization_loss(steps, p, 300.0 / p, width=0.2, high=2.0, low=0.0)
    free = fit_aggregate_power_law(steps, loss)
    assert free.fit.converged and 0.0 <= free.floor <= loss.min()
    assert 0.0 < free.exponent < 1.0
    # a free floor fits at least as well as any fixed one, e.g. the learned loss 0
    fixed = fit_aggregate_power_law(steps, loss, fixed={"E": 0.0})
    assert free.fit.objective <= fixed.fit.objective * (1 + 1e-6)
