"""Backtests: the Chinchilla large-model holdout pinned, the JSON schema, and bad holdouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.laws import make_law
from scalelab.predict.backtest import SCHEMA, Backtest, run_backtest
from scalelab.predict.intervals import prediction_interval, residual_noise
from scalelab.store import read_table

X = {"N": "params_N", "D": "tokens_D"}
WHERE = "excluded_by_epoch == 0"
HOLDOUT = "params_N >= 2e9"
KEYS = {
    "schema",
    "law",
    "x",
    "y",
    "holdout",
    "n_fit",
    "n_holdout",
    "coverage_level",
    "metrics",
    "rows",
    "fit",
}


@pytest.fixture(scope="module")
def chinchilla_bt() -> Backtest:
    """The documented baseline: Huber delta 1e-3, 1000 bootstrap refits, extrapolation noise."""
    return run_backtest(
        "chinchilla",
        "chinchilla",
        x=X,
        y="loss",
        where=WHERE,
        holdout=HOLDOUT,
        bootstrap=1000,
        seed=0,
    )


def test_bundled_chinchilla_is_the_shared_extract(shared_data: Path) -> None:
    bundled = read_table("chinchilla")
    shared = read_table(shared_data / "chinchilla_epoch_svg_extracted.csv")
    assert bundled.fingerprint() == shared.fingerprint()
    assert int(np.sum(bundled.numeric("excluded_by_epoch") == 0)) == 240


def test_chinchilla_large_model_backtest(chinchilla_bt: Backtest) -> None:
    bt = chinchilla_bt
    assert (bt.n_fit, bt.n_holdout) == (188, 52)
    # measured: ARE 0.850% (the plain full-grid Huber baseline), MAE 0.01986, max 0.0885
    assert bt.metrics["are"] == pytest.approx(0.00850, abs=5e-5)
    assert bt.metrics["mae"] == pytest.approx(0.01986, abs=2e-4)
    assert bt.metrics["max_abs_error"] == pytest.approx(0.0885, abs=1e-3)
    # at least 90% inside their 95% prediction intervals (measured 52/52)
    assert bt.metrics["coverage"] >= 0.90
    assert bt.metrics["coverage"] == sum(r.inside for r in bt.rows) / 52
    # forward validation in the fitted rows: 0.74% inside the range, +1.04% per e-fold beyond
    assert bt.noise is not None and bt.noise.method == "extrapolation"
    assert bt.noise.scale == pytest.approx(0.00736, rel=0.05)
    assert bt.noise.growth == pytest.approx(0.0104, rel=0.05)
    ext = bt.extrapolation
    assert ext is not None and not ext.compute_is_bound
    assert ext.above["N"] == pytest.approx(9.02, abs=0.01)
    assert ext.above["C"] == pytest.approx(9.99, abs=0.01)


def test_in_sample_noise_under_covers_the_large_models(chinchilla_bt: Backtest) -> None:
    """The same fit with the in-sample residual scale (0.42%): only 35 of 52 inside."""
    res = chinchilla_bt.fit
    noise = residual_noise(res, "chinchilla")
    assert noise.scale == pytest.approx(0.0042, abs=2e-4)
    inputs = {k: np.array([r.inputs[k] for r in chinchilla_bt.rows]) for k in ("N", "D")}
    y = np.array([r.y for r in chinchilla_bt.rows])
    pred = prediction_interval(res, inputs, noise=noise, seed=0)
    cover = float(np.mean((y >= pred.lower) & (y <= pred.upper)))
    assert cover == pytest.approx(35 / 52, abs=0.04)
    assert cover < chinchilla_bt.metrics["coverage"]


@pytest.mark.slow
def test_delta_chosen_by_inner_cross_validation() -> None:
    """Within the 188 fitted rows only: fit N < cut, predict cut <= N < 2e9. Huber delta 1e-4
    has the lower mean ARE (0.698% against 0.757% for 1e-3), but on the real holdout it
    gives 0.890%, worse than the 0.850% baseline: the 0.8% target is not reached."""
    where = f"{WHERE} and params_N < 2e9"
    mean_are = {}
    for delta in (1e-3, 1e-4):
        ares = [
            run_backtest(
                "chinchilla",
                "chinchilla",
                x=X,
                y="loss",
                where=where,
                holdout=f"params_N >= {cut}",
                delta=delta,
                noise="residual",
            ).metrics["are"]
            for cut in ("3e8", "5e8", "7e8", "1e9", "1.4e9")
        ]
        mean_are[delta] = float(np.mean(ares))
    assert mean_are[1e-3] == pytest.approx(0.00757, abs=5e-5)
    assert mean_are[1e-4] == pytest.approx(0.00698, abs=5e-5)
    chosen = run_backtest(
        "chinchilla",
        "chinchilla",
        x=X,
        y="loss",
        where=WHERE,
        holdout=HOLDOUT,
        delta=1e-4,
        noise="residual",
    )
    assert chosen.metrics["are"] == pytest.approx(0.00890, abs=5e-5)


def test_json_schema_and_round_trip(chinchilla_bt: Backtest, tmp_path: Path) -> None:
    out = tmp_path / "bt.json"
    chinchilla_bt.save(out)
    d = json.loads(out.read_text())
    assert set(d) == KEYS
    assert d["schema"] == SCHEMA == "scalelab.backtest/1"
    assert d["law"] == "chinchilla" and d["x"] == X and d["y"] == "loss"
    assert d["holdout"] == HOLDOUT and d["coverage_level"] == 0.95
    assert set(d["metrics"]) == {"are", "mae", "max_abs_error", "coverage"}
    assert len(d["rows"]) == 52
    assert set(d["rows"][0]) == {"inputs", "y", "yhat", "lower", "upper", "inside"}
    assert set(d["rows"][0]["inputs"]) == {"N", "D"}
    assert d["fit"]["schema"] == "scalelab.fit/1" and d["fit"]["n_points"] == 188
    assert d["fit"]["options"]["where"] == f"({WHERE}) and not ({HOLDOUT})"
    back = Backtest.load(out)
    assert back.metrics == chinchilla_bt.metrics
    assert back.rows == chinchilla_bt.rows
    assert back.fit.values() == chinchilla_bt.fit.values()
    # the saved fit is the fit of the kept rows, usable on its own
    row = back.rows[0]
    assert back.fit.predict(**row.inputs).mean[0] == pytest.approx(row.yhat, rel=1e-12)


def test_metrics_follow_their_definitions() -> None:
    rng = np.random.default_rng(0)
    x = np.logspace(6, 10, 60)
    y = make_law("power_law")(x=x, E=1.7, A=400.0, alpha=0.45) * np.exp(
        0.01 * rng.standard_normal(60)
    )
    bt = run_backtest(
        "power_law", {"x": x, "loss": y}, y="loss", holdout="x > 3e9", noise="residual"
    )
    obs = np.array([r.y for r in bt.rows])
    hat = np.array([r.yhat for r in bt.rows])
    assert bt.n_holdout == int(np.sum(x > 3e9)) and bt.n_fit == 60 - bt.n_holdout
    assert bt.metrics["are"] == pytest.approx(np.mean(np.abs(obs - hat) / obs))
    assert bt.metrics["mae"] == pytest.approx(np.mean(np.abs(obs - hat)))
    assert bt.metrics["max_abs_error"] == pytest.approx(np.max(np.abs(obs - hat)))
    assert bt.x == {"x": "x"}
    assert "ARE" in bt.report() and "95% low" in bt.report()


def test_holdout_matching_no_row_is_an_error() -> None:
    with pytest.raises(
        DataError,
        match=r'--holdout "params_N >= 1e15" matches none of the 240 rows '
        r'of chinchilla where "excluded_by_epoch == 0": nothing to predict',
    ):
        run_backtest(
            "chinchilla", "chinchilla", x=X, y="loss", where=WHERE, holdout="params_N >= 1e15"
        )


def test_holdout_leaving_too_few_rows_is_an_error() -> None:
    with pytest.raises(
        DataError,
        match=r"leaves 4 of the 240 rows .* to fit 5 free parameter\(s\) of "
        r"chinchilla; a backtest needs at least 7: hold out fewer rows",
    ):
        run_backtest(
            "chinchilla", "chinchilla", x=X, y="loss", where=WHERE, holdout="params_N > 7.382468e7"
        )
    with pytest.raises(DataError, match="leaves 0 of"):
        run_backtest("chinchilla", "chinchilla", x=X, y="loss", where=WHERE, holdout="params_N > 0")


def test_other_bad_settings() -> None:
    with pytest.raises(DataError, match="noise must be one of extrapolation, residual"):
        run_backtest("chinchilla", "chinchilla", x=X, holdout=HOLDOUT, noise="gauss")
    with pytest.raises(DataError, match="needs --holdout EXPR"):
        run_backtest("chinchilla", "chinchilla", x=X, holdout="  ")
    with pytest.raises(DataError, match="unknown column 'size'"):
        run_backtest("chinchilla", "chinchilla", x=X, holdout="size > 1")
    with pytest.raises(DataError, match="not a scalelab backtest"):
        Backtest.from_dict({"schema": "scalelab.backtest/0"})


def test_held_out_rows_outside_the_laws_domain_are_an_error() -> None:
    x = np.concatenate([np.logspace(6, 9, 20), [-5.0]])
    y = make_law("power_law")(x=np.abs(x), E=1.7, A=400.0, alpha=0.45)
    with pytest.raises(
        DataError,
        match=r"1 held-out row\(s\) \(first: row 20\) give no finite "
        r"power_law prediction",
    ):
        run_backtest("power_law", {"x": x, "loss": y}, y="loss", holdout="x < 0", noise="residual")
