"""Prediction intervals with observation noise, noise models and extrapolation distances."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import scalelab
from scalelab.errors import DataError, FitError
from scalelab.fit import FitResult
from scalelab.laws import make_law
from scalelab.predict.extrapolation import (
    check_extrapolation,
    extrapolation_distance,
    fitted_ranges,
)
from scalelab.predict.intervals import (
    MAD_TO_SD,
    NoiseModel,
    extrapolation_noise,
    fit_space_residuals,
    noise_from_fit,
    parameter_draws,
    prediction_interval,
    residual_noise,
)

TRUE = {"E": 1.7, "A": 400.0, "alpha": 0.45}
SIGMA = 0.02  # log-space noise of the synthetic runs


def synthetic(seed: int = 0, n: int = 200) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.logspace(6, 10, n)
    y = make_law("power_law")(x=x, **TRUE) * np.exp(SIGMA * rng.standard_normal(n))
    return {"x": x, "loss": y}


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return synthetic()


@pytest.fixture(scope="module")
def res(data: dict[str, np.ndarray]) -> FitResult:
    return scalelab.fit("power_law", data, y="loss", loss="mse")


def test_residual_noise_is_the_robust_scale_of_the_residuals(res: FitResult, data: dict) -> None:
    noise = residual_noise(res, data)
    r = fit_space_residuals(res, {"x": data["x"]}, data["loss"])
    assert noise.scale == pytest.approx(MAD_TO_SD * np.median(np.abs(r - np.median(r))), rel=1e-12)
    assert noise.scale == pytest.approx(SIGMA, rel=0.1)  # measured 0.02015
    assert noise.growth == 0 and noise.space == "log" and noise.n_residuals == 200
    # the fit's own RMS is the cheap, non-robust version of the same number
    assert noise_from_fit(res).scale == pytest.approx(SIGMA, rel=0.1)


def test_interval_with_noise_covers_new_runs_at_the_nominal_rate(
    res: FitResult, data: dict
) -> None:
    """Fresh runs inside the fitted range: 95% intervals cover ~95% (measured 0.9511);
    the parameter-only interval of FitResult.predict covers far fewer (measured 0.165)."""
    x_new = np.logspace(6.2, 9.8, 20)
    rng = np.random.default_rng(1)
    y_new = make_law("power_law")(x=x_new, **TRUE) * np.exp(SIGMA * rng.standard_normal((500, 20)))
    pred = prediction_interval(res, x=x_new, noise=residual_noise(res, data))
    cover = np.mean((y_new >= pred.lower) & (y_new <= pred.upper))
    assert 0.93 <= cover <= 0.97
    assert pred.method == "hessian-normal+noise(residual-mad)"
    assert np.all(pred.lower < pred.mean) and np.all(pred.mean < pred.upper)
    law_only = res.predict(x=x_new)
    assert np.mean((y_new >= law_only.lower) & (y_new <= law_only.upper)) < 0.4
    narrow = prediction_interval(res, x=x_new, noise=residual_noise(res, data), coverage=0.5)
    assert np.all(narrow.upper - narrow.lower < pred.upper - pred.lower)


def test_interval_widens_with_distance_when_noise_grows(res: FitResult) -> None:
    noise = NoiseModel("log", 0.01, 0.02)
    inside = prediction_interval(res, x=[1e9], noise=noise)
    far = prediction_interval(res, x=[1e9], noise=noise, distance=[math.log(8)])
    w_in = math.log(inside.upper[0] / inside.lower[0])
    w_far = math.log(far.upper[0] / far.lower[0])
    # noise sd 0.01 inside vs sqrt(0.01^2 + (0.02 log 8)^2) = 0.0432 at 8x
    assert w_far / w_in == pytest.approx(4.0, rel=0.15)


def test_bootstrap_draws_are_used_when_the_fit_has_them(data: dict) -> None:
    boot = scalelab.fit("power_law", data, y="loss", loss="mse", bootstrap=100, seed=0)
    draws, label = parameter_draws(boot)
    assert label == "bootstrap" and draws.shape == boot.bootstrap.shape
    pred = prediction_interval(boot, x=[1e8], noise=residual_noise(boot, data))
    assert pred.method.startswith("bootstrap+noise")


def test_hessian_draws_centre_on_the_fit(res: FitResult) -> None:
    draws, label = parameter_draws(res, n=2000, seed=3)
    assert label == "hessian-normal" and draws.shape == (2000, 3)
    assert np.median(draws, axis=0) == pytest.approx(res.theta, rel=0.02)
    se_alpha = res.params["alpha"].stderr
    assert np.std(draws[:, 2]) == pytest.approx(se_alpha, rel=0.1)


def test_no_parameter_uncertainty_is_an_error(res: FitResult) -> None:
    broken = dataclasses.replace(res, covariance=np.full((3, 3), np.nan), bootstrap=None)
    with pytest.raises(FitError, match="refit with --bootstrap"):
        prediction_interval(broken, x=[1e8])


def test_bad_prediction_input(res: FitResult) -> None:
    with pytest.raises(DataError, match="coverage must be between 0 and 1"):
        prediction_interval(res, x=[1e8], coverage=1.5)
    with pytest.raises(DataError, match="must be finite"):
        prediction_interval(res, x=[np.nan])
    with pytest.raises(DataError, match="linear space but the fit is in log space"):
        prediction_interval(res, x=[1e8], noise=NoiseModel("linear", 0.01))


def test_noise_model_checks_and_round_trip() -> None:
    noise = NoiseModel("log", 0.003, 0.004, "extrapolation", 12)
    assert noise.sd([0.0, 1.0]) == pytest.approx([0.003, 0.005])
    assert NoiseModel.from_dict(noise.to_dict()) == noise
    assert "0.3% + 0.4% per e-fold" in noise.describe()
    with pytest.raises(DataError, match="scale must be a finite non-negative"):
        NoiseModel("log", -1.0)
    with pytest.raises(DataError, match="space must be 'log' or 'linear'"):
        NoiseModel("logit", 0.1)
    with pytest.raises(DataError, match="malformed noise model"):
        NoiseModel.from_dict({"space": "log"})


def test_extrapolation_noise_settings_are_checked(res: FitResult, data: dict) -> None:
    with pytest.raises(DataError, match="order_by 'N' is not an input of power_law"):
        extrapolation_noise(res, data, order_by="N")
    with pytest.raises(DataError, match="too few rows for extrapolation noise"):
        extrapolation_noise(res, data, folds=60)
    with pytest.raises(DataError, match="at least 2 folds"):
        extrapolation_noise(res, data, folds=1)


def test_noise_needs_the_fits_own_data(res: FitResult, data: dict) -> None:
    other = {"x": data["x"], "loss": data["loss"] * 1.01}
    with pytest.raises(DataError, match="is not the data this power_law fit was made on"):
        residual_noise(res, other)


# ----------------------------------------------------------------------------- extrapolation
def test_distance_is_log_multiple_outside_the_box() -> None:
    ranges = {"N": (1e8, 2e9), "D": (1e9, 1e11)}
    d = extrapolation_distance(
        ranges, {"N": [1e9, 1.6e10, 1e9, 1e7], "D": [1e10, 1e10, 4e11, 1e10]}
    )
    assert d == pytest.approx([0.0, math.log(8), math.log(4), math.log(10)])


def test_linear_inputs_use_spans() -> None:
    ranges = {"r1": (0.0, 0.5)}
    assert extrapolation_distance(ranges, {"r1": [0.25, 1.0]}) == pytest.approx([0.0, 1.0])
    ext = check_extrapolation(ranges, {"r1": [1.0]})
    assert ext.outside and ext.spans["r1"] == pytest.approx(1.0)
    assert "r1 1 fitted ranges outside" in ext.message()


def test_message_names_multiples_of_size_and_compute() -> None:
    ranges = {"N": (1e8, 2e9), "D": (1e9, 1e11), "C": (1e18, 1e21)}
    ext = check_extrapolation(ranges, {"N": [1.6e10], "D": [1e11]})
    assert ext.above["N"] == pytest.approx(8.0)
    assert ext.above["C"] == pytest.approx(6 * 1.6e10 * 1e11 / 1e21)
    msg = ext.message()
    assert msg.startswith("extrapolating: N up to 8x the largest fitted N (2e+09)")
    assert "C up to 9.6x the largest fitted compute (1e+21)" in msg
    assert "D up to" not in msg
    inside = check_extrapolation(ranges, {"N": [1e9], "D": [1e10]})
    assert not inside.outside and inside.message() == "" and inside.factor == 1.0
    assert inside.to_dict()["outside"] is False


def test_fitted_compute_is_exact_with_the_rows_and_a_bound_without(res: FitResult) -> None:
    ch = scalelab.fit(
        "chinchilla",
        {
            "N": [1e8, 1e9, 1e8, 1e9, 3e8, 5e8, 2e8],
            "D": [1e9, 1e9, 1e10, 1e10, 3e9, 2e9, 5e9],
            "loss": [3.5, 3.1, 3.0, 2.6, 3.0, 3.0, 3.0],
        },
        y="loss",
        starts=20,
        raise_on_failure=False,
    )
    # fits record the exact compute range (max C = 6 * 1e9 * 1e10 = 6e19, min 6e17)
    assert ch.data["compute_range"] == pytest.approx([6e17, 6e19])
    assert fitted_ranges(ch) == ({"N": (1e8, 1e9), "D": (1e9, 1e10), "C": (6e17, 6e19)}, False)
    # a fit file written before that only bounds it from the N and D ranges
    old = dataclasses.replace(ch, data={k: v for k, v in ch.data.items() if k != "compute_range"})
    ranges, bound = fitted_ranges(old)
    assert bound and ranges["C"] == pytest.approx((6e17, 6e19))
    ext = check_extrapolation(ranges, {"N": [1e9], "D": [1e12]}, compute_is_bound=bound)
    assert "C at least 100x the largest fitted compute (which is at most" in ext.message()
    exact, bound = fitted_ranges(ch, {"N": np.array([1e8, 1e9]), "D": np.array([1e10, 2e9])})
    assert not bound and exact["C"] == pytest.approx((6e18, 1.2e19))
    recorded = dataclasses.replace(ch, data={**ch.data, "compute_range": [1e18, 3e19]})
    assert fitted_ranges(recorded)[0]["C"] == (1e18, 3e19)
    assert "C" not in fitted_ranges(res)[0]  # a law of x alone has no compute
