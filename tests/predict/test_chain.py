"""Chained fits (scalelab.chain/1): composition, propagated intervals, JSON, bad input.

The fits here are made on synthetic data from a known two-step process (a Chinchilla task loss
of (N, D), then a chance-floored sigmoid of accuracy in log task loss) with known noise, so
the chain's point prediction and the calibration of its interval can be checked.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from scalelab.errors import DataError, LawError
from scalelab.fit import FitResult, fit
from scalelab.predict.chain import SCHEMA, Chain, Stage, expression_names, read_json

TRUE_LOSS = {"E": 0.6, "A": 40.0, "B": 90.0, "alpha": 0.25, "beta": 0.22}
TRUE_ACC = {"floor": 0.9, "ceiling": 0.25, "x0": 1.1, "width": 0.25}
NOISE_LOSS, NOISE_ACC = 0.01, 0.01  # sd of log residuals


def _truth_loss(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    p = TRUE_LOSS
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]


def _truth_acc(loss: np.ndarray) -> np.ndarray:
    p = TRUE_ACC
    z = (np.log(loss) - math.log(p["x0"])) / p["width"]
    return p["floor"] + (p["ceiling"] - p["floor"]) / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def fits() -> tuple[FitResult, FitResult]:
    rng = np.random.default_rng(7)
    n = np.repeat(np.geomspace(5e7, 1e9, 5), 4)
    d = n * np.tile([10.0, 20.0, 50.0, 100.0], 5)
    loss = _truth_loss(n, d) * np.exp(rng.normal(0, NOISE_LOSS, n.size))
    step1 = fit("chinchilla", {"N": n, "D": d, "loss": loss}, y="loss", bootstrap=60, seed=1)
    x = np.geomspace(0.8, 3.0, 120)
    acc = _truth_acc(x) * np.exp(rng.normal(0, NOISE_ACC, x.size))
    step2 = fit("sigmoid", {"x": x, "acc": acc}, y="acc", fixed={"ceiling": 0.25},
                bounds={"floor": (0.25, 1.0)}, bootstrap=60, seed=2)
    return step1, step2


@pytest.fixture(scope="module")
def chain(fits: tuple[FitResult, FitResult]) -> Chain:
    return Chain.two_step(*fits, chance=0.25, target="accuracy")


def test_point_prediction_is_the_composition_of_the_fits(fits, chain) -> None:
    step1, step2 = fits
    n, d = np.array([3e9, 1e10]), np.array([6e10, 2e11])
    loss = step1.predict(N=n, D=d).mean
    expected = step2.predict(x=loss).mean
    pred = chain.predict(N=n, D=d, seed=0)
    np.testing.assert_allclose(pred.mean, expected, rtol=1e-12)
    values = chain.stage_values(N=n, D=d)
    np.testing.assert_allclose(values["loss"], loss, rtol=1e-12)
    assert chain.inputs == ("N", "D") and chain.method == "two-step"
    # the fits recover the process: inside the fitted range the chain is close to the truth
    n_in, d_in = np.array([1e8, 5e8]), np.array([2e9, 2.5e10])
    near = chain.predict(N=n_in, D=d_in, noise=False, seed=0)
    np.testing.assert_allclose(near.mean, _truth_acc(_truth_loss(n_in, d_in)), atol=0.01)


def test_interval_propagates_both_steps_and_noise(fits, chain) -> None:
    n, d = np.array([3e9]), np.array([6e10])
    with_noise = chain.predict(N=n, D=d, seed=0)
    curves = chain.predict(N=n, D=d, noise=False, seed=0)
    for p in (with_noise, curves):
        assert p.lower[0] < p.mean[0] < p.upper[0]
    assert with_noise.upper[0] - with_noise.lower[0] > curves.upper[0] - curves.lower[0]
    # step 1's uncertainty matters: a chain whose step 1 is exact is narrower still
    step1, step2 = fits
    exact1 = Chain((Stage(dataclasses.replace(step1, bootstrap=step1.theta[None]),
                          {"N": "N", "D": "D"}, "loss"),
                    Stage(step2, {"x": "loss"}, "accuracy")), target="accuracy")
    only2 = exact1.predict(N=n, D=d, noise=False, seed=0)
    assert only2.upper[0] - only2.lower[0] < curves.upper[0] - curves.lower[0]
    assert "bootstrap" in with_noise.method and "noise" in with_noise.method


@pytest.mark.slow
def test_interval_covers_new_models_at_the_nominal_rate() -> None:
    """Over 6 synthetic ladders, new models drawn from the true process (with its noise) land
    inside the chain's 90% interval about 90% of the time (measured: 0.91 on average; from
    0.79 to 0.97 per ladder)."""
    rates = []
    for seed in range(20, 26):
        rng = np.random.default_rng(seed)
        n = np.repeat(np.geomspace(5e7, 1e9, 5), 4)
        d = n * np.tile([10.0, 20.0, 50.0, 100.0], 5)
        loss = _truth_loss(n, d) * np.exp(rng.normal(0, NOISE_LOSS, n.size))
        s1 = fit("chinchilla", {"N": n, "D": d, "loss": loss}, y="loss", bootstrap=40, seed=seed)
        x = np.geomspace(0.8, 3.0, 120)
        acc = _truth_acc(x) * np.exp(rng.normal(0, NOISE_ACC, x.size))
        s2 = fit("sigmoid", {"x": x, "acc": acc}, y="acc", fixed={"ceiling": 0.25},
                 bounds={"floor": (0.25, 1.0)}, bootstrap=40, seed=seed)
        pred = Chain.two_step(s1, s2, chance=0.25).predict(N=2e8, D=4e9, coverage=0.9, seed=seed)
        new = np.random.default_rng(1000 + seed)
        loss_new = _truth_loss(np.array(2e8), np.array(4e9)) * np.exp(new.normal(0, NOISE_LOSS, 2000))
        acc_new = _truth_acc(loss_new) * np.exp(new.normal(0, NOISE_ACC, 2000))
        rates.append(np.mean((acc_new >= pred.lower[0]) & (acc_new <= pred.upper[0])))
    assert 0.83 <= float(np.mean(rates)) <= 0.96, rates


def test_noise_is_the_residual_scatter_with_a_dof_correction(fits, chain) -> None:
    step1, step2 = fits
    for stage, res in zip(chain.stages, fits, strict=True):
        n, k = res.n_points, res.n_free
        expected = res.stats["rmse_residual_space"] * math.sqrt(n / (n - k))
        assert stage.noise is not None and stage.noise.space == "log"
        assert stage.noise.scale == pytest.approx(expected, rel=1e-12)
    # the data were made with log-noise sd 0.01; the estimates are of that size
    assert 0.005 < chain.stages[0].noise.scale < 0.02
    assert 0.005 < chain.stages[1].noise.scale < 0.02
    assert Chain.two_step(step1, step2, noise=False).stages[0].noise is None


def test_json_round_trip_predicts_the_same(chain, tmp_path: Path) -> None:
    path = tmp_path / "chain.json"
    chain.save(path)
    d = json.loads(path.read_text())
    assert d["schema"] == SCHEMA and d["inputs"] == ["N", "D"] and d["chance"] == 0.25
    assert [s["fit"]["law"] for s in d["stages"]] == ["chinchilla", "sigmoid"]
    assert d["stages"][1]["inputs"] == {"x": "loss"} and d["clip"] == [0.0, 1.0]
    back = Chain.load(path)
    a = chain.predict(N=[3e9, 1e10], D=[6e10, 2e11], seed=5)
    b = back.predict(N=[3e9, 1e10], D=[6e10, 2e11], seed=5)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.lower, b.lower)
    np.testing.assert_array_equal(a.upper, b.upper)


def test_direct_chain_maps_inputs_through_an_expression(fits) -> None:
    rng = np.random.default_rng(3)
    c = np.geomspace(1e17, 1e21, 60)
    acc = 0.25 + 0.6 * np.exp(-((c / 1e19) ** -0.4)) + rng.normal(0, 0.005, c.size)
    res = fit("gompertz", {"x": c, "acc": acc}, y="acc", loss="mse_linear",
              fixed={"floor": 0.25}, bounds={"ceiling": (0.25, 1.0)})
    ch = Chain.direct(res, inputs={"x": "6 * N * D"}, chance=0.25)
    assert ch.inputs == ("N", "D")
    pred = ch.predict(N=1e9, D=2e10, seed=0)
    assert pred.mean[0] == pytest.approx(float(res.predict(x=6 * 1e9 * 2e10).mean[0]), rel=1e-12)
    assert 0.0 <= pred.lower[0] < pred.mean[0] < pred.upper[0] <= 1.0
    notes = ch.extrapolation_notes(N=1e10, D=2e11)
    assert notes and "6 * N * D" in notes[0] and "largest fitted value" in notes[0]


def test_expression_names() -> None:
    assert expression_names("6 * N * D") == ["N", "D"]
    assert expression_names("log(bpb) + inf") == ["bpb"]
    with pytest.raises(DataError, match="not a valid expression"):
        expression_names("6 * * N")


# ----------------------------------------------------------------------------- bad input
def test_reading_a_fit_or_another_version_as_a_chain_fails_clearly(fits, chain) -> None:
    with pytest.raises(DataError, match="single fit"):
        Chain.from_dict(fits[0].to_dict())
    d = chain.to_dict()
    with pytest.raises(DataError, match=r"'scalelab.chain/2' is not readable"):
        Chain.from_dict({**d, "schema": "scalelab.chain/2"})
    with pytest.raises(DataError, match="not a scalelab chain"):
        Chain.from_dict({"schema": "something"})
    with pytest.raises(DataError, match="malformed chain JSON"):
        Chain.from_dict({k: v for k, v in d.items() if k != "stages"})
    other = copy.deepcopy(d)
    other["stages"][0]["fit"]["law"] = "no_such_law"
    with pytest.raises(LawError, match="unknown law 'no_such_law'"):
        Chain.from_dict(other)
    wrong = copy.deepcopy(d)
    wrong["stages"][1]["fit"]["schema"] = "scalelab.fit/9"
    with pytest.raises(DataError, match="not a scalelab fit"):
        Chain.from_dict(wrong)


def test_read_json_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_json(bad)


def test_bad_chains_and_inputs_are_rejected(fits, chain) -> None:
    step1, step2 = fits
    with pytest.raises(LawError, match="law of one input; chinchilla has 2"):
        Chain.two_step(step2, step1)
    with pytest.raises(LawError, match=r"needs expressions for its input\(s\) \['x'\]"):
        Stage(step2, {"N": "loss"}, "acc")
    with pytest.raises(DataError, match="identifier"):
        Stage(step2, {"x": "loss"}, "my acc")
    with pytest.raises(DataError, match="chance accuracy"):
        Chain.two_step(step1, step2, chance=1.5)
    with pytest.raises(DataError, match="repeats an earlier"):
        Chain((Stage(step1, {"N": "N", "D": "D"}, "loss"), Stage(step2, {"x": "loss"}, "loss")),
              target="acc")
    with pytest.raises(DataError, match=r"needs input\(s\) N, D; missing D"):
        chain.predict(N=1e9)
    with pytest.raises(DataError, match="unknown C"):
        chain.predict(N=1e9, D=1e10, C=3.0)
    with pytest.raises(DataError, match="finite"):
        chain.predict(N=float("nan"), D=1e10)
    with pytest.raises(DataError, match="coverage"):
        chain.predict(N=1e9, D=1e10, coverage=1.5)
