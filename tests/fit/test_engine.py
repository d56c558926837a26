"""The fitting engine on synthetic data with known parameters."""

from __future__ import annotations

import json

import numpy as np
import pytest

import scalelab
from scalelab.errors import DataError, FitError, LawError
from scalelab.fit import FitResult, law_parameters
from scalelab.laws import make_law

TRUE_PL = {"E": 1.7, "A": 400.0, "alpha": 0.45}
TRUE_CH = {"E": 1.82, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}


def power_law_data(seed: int = 0, n: int = 40, noise: float = 0.01) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.logspace(6, 10, n)
    y = make_law("power_law")(x=x, **TRUE_PL) * np.exp(noise * rng.standard_normal(n))
    return {"x": x, "loss": y, "run": np.arange(n) // 4}


def chinchilla_data(seed: int = 0, noise: float = 0.01) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_grid, d_grid = np.meshgrid(np.logspace(7.5, 10, 8), np.logspace(9, 11.5, 8))
    n, d = n_grid.ravel(), d_grid.ravel()
    y = make_law("chinchilla")(N=n, D=d, **TRUE_CH) * np.exp(noise * rng.standard_normal(n.size))
    return {"N": n, "D": d, "loss": y}


def test_chinchilla_recovers_known_parameters_inside_intervals() -> None:
    res = scalelab.fit("chinchilla", chinchilla_data(1), y="loss", bootstrap=300, seed=1)
    for name, true in TRUE_CH.items():
        est = res.params[name]
        assert est.ci_low <= true <= est.ci_high, (name, est)
    assert res.params["alpha"].value == pytest.approx(0.35, abs=0.05)


def test_power_law_recovery_with_random_starts() -> None:
    res = scalelab.fit("power_law", power_law_data(), y="loss", loss="mse", starts=50, seed=0)
    for name, true in TRUE_PL.items():
        assert res.params[name].ci_low <= true <= res.params[name].ci_high, name
    assert res.interval_method == "hessian-wald"
    assert res.options["n_starts"] <= 50


def test_noise_free_data_is_fitted_exactly() -> None:
    data = power_law_data(noise=0.0)
    res = scalelab.fit("power_law", data, y="loss", loss="mse")
    for name, true in TRUE_PL.items():
        assert res.params[name].value == pytest.approx(true, rel=1e-6)
    assert res.stats["max_abs_error"] < 1e-8


def test_fixed_and_tied_parameters() -> None:
    data = chinchilla_data(2)
    tied = scalelab.fit("chinchilla", data, y="loss", tie={"beta": "alpha"})
    assert tied.params["beta"].value == tied.params["alpha"].value
    assert tied.params["beta"].tied == "alpha"
    assert tied.n_free == 4
    fixed = scalelab.fit("chinchilla", data, y="loss", fixed={"alpha": 0.3})
    assert fixed.params["alpha"].value == 0.3 and fixed.params["alpha"].fixed
    # freeing a parameter can only lower the optimum
    free = scalelab.fit("chinchilla", data, y="loss")
    assert free.objective <= fixed.objective + 1e-12
    assert free.objective <= tied.objective + 1e-12


def test_lmfit_parameters_give_the_same_fit_as_keywords() -> None:
    data = chinchilla_data(3)
    law = make_law("chinchilla")
    pars = law_parameters(law)
    pars["beta"].expr = "alpha"
    pars["E"].set(value=1.82, vary=False)
    via_lmfit = scalelab.fit(law, data, y="loss", params=pars)
    via_kwargs = scalelab.fit(law, data, y="loss", tie={"beta": "alpha"}, fixed={"E": 1.82})
    for name in law.param_names:
        assert via_lmfit.params[name].value == pytest.approx(via_kwargs.params[name].value, rel=1e-7)


def test_tie_with_an_expression() -> None:
    res = scalelab.fit("chinchilla", chinchilla_data(4), y="loss", tie={"beta": "1.05 * alpha"})
    assert res.params["beta"].value == pytest.approx(1.05 * res.params["alpha"].value)


def test_bounds_are_respected() -> None:
    res = scalelab.fit("chinchilla", chinchilla_data(5), y="loss", bounds={"alpha": (0.0, 0.3)})
    assert res.params["alpha"].value <= 0.3 + 1e-12
    assert res.params["alpha"].at_bound
    assert "at bound: alpha" in res.message


def test_zero_weight_equals_dropping_the_point() -> None:
    data = power_law_data(6)
    w = np.ones(len(data["x"]))
    w[:5] = 0
    weighted = scalelab.fit("power_law", {**data, "w": w}, y="loss", loss="mse", weights="w")
    dropped = scalelab.fit("power_law", {k: v[5:] for k, v in data.items()}, y="loss", loss="mse")
    for name in TRUE_PL:
        assert weighted.params[name].value == pytest.approx(dropped.params[name].value, rel=1e-6)


def test_huber_resists_an_outlier_that_pulls_least_squares() -> None:
    data = power_law_data(7, noise=0.002)
    data["loss"] = data["loss"].copy()
    data["loss"][-1] *= 1.5  # one corrupted run at the largest scale
    robust = scalelab.fit("power_law", data, y="loss", loss="huber")
    mse = scalelab.fit("power_law", data, y="loss", loss="mse")
    err = lambda r: abs(r.params["E"].value - TRUE_PL["E"])  # noqa: E731
    assert err(robust) < 0.02 < err(mse)


def test_asymmetric_loss_prefers_underestimating_less() -> None:
    data = power_law_data(8, noise=0.03)
    sym = scalelab.fit("power_law", data, y="loss", loss="mse")
    asym = scalelab.fit("power_law", data, y="loss", loss="asymmetric", penalty=10)
    over = lambda r: np.mean(r.predict(x=data["x"]).mean > data["loss"])  # noqa: E731
    assert over(asym) < over(sym)


def test_group_bootstrap_keeps_runs_together() -> None:
    from scalelab.fit.uncertainty import bootstrap_weights

    groups = np.repeat(np.arange(5), 3)
    w = bootstrap_weights(15, 50, np.random.default_rng(0), groups=groups)
    assert w.shape == (50, 15)
    for row in w:
        assert np.all(row.reshape(5, 3) == row.reshape(5, 3)[:, :1])
        assert row.sum() == 15
    res = scalelab.fit("power_law", power_law_data(), y="loss", bootstrap=100, bootstrap_by="run")
    assert res.options["bootstrap_by"] == "run"
    assert res.interval_method == "bootstrap-percentile"


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    a = scalelab.fit("power_law", power_law_data(), y="loss", bootstrap=50, seed=3)
    b = scalelab.fit("power_law", power_law_data(), y="loss", bootstrap=50, seed=3)
    c = scalelab.fit("power_law", power_law_data(), y="loss", bootstrap=50, seed=4)
    assert np.array_equal(a.bootstrap, b.bootstrap)
    assert not np.array_equal(a.bootstrap, c.bootstrap)


def test_json_round_trip_keeps_params_and_predictions(tmp_path) -> None:
    res = scalelab.fit("chinchilla", chinchilla_data(9), y="loss", bootstrap=100)
    path = tmp_path / "fit.json"
    res.save(path)
    d = json.loads(path.read_text())
    for key in ("law", "params", "objective", "n_points", "converged", "seconds"):
        assert key in d
    assert set(d["params"]["alpha"]) >= {"value", "stderr", "ci_low", "ci_high"}
    assert d["data"]["fingerprint"] and d["provenance"]["scalelab"] == scalelab.__version__
    back = FitResult.load(path)
    assert back.values() == res.values()
    p1, p2 = res.predict(N=1e11, D=2e12), back.predict(N=1e11, D=2e12)
    assert np.allclose([p1.mean, p1.lower, p1.upper], [p2.mean, p2.lower, p2.upper])


def test_delta_method_prediction_interval() -> None:
    res = scalelab.fit("chinchilla", chinchilla_data(10), y="loss")
    near = res.predict(N=1e9, D=2e10)
    far = res.predict(N=1e12, D=2e13)
    assert near.method == "delta-method"
    assert near.lower[0] < near.mean[0] < near.upper[0]
    # extrapolating further widens the relative interval
    rel = lambda p: (p.upper[0] - p.lower[0]) / p.mean[0]  # noqa: E731
    assert rel(far) > rel(near)


def test_result_is_frozen() -> None:
    res = scalelab.fit("power_law", power_law_data(), y="loss")
    with pytest.raises(AttributeError):
        res.objective = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        res.params["E"] = None  # type: ignore[index]


def test_report_names_law_objective_and_intervals() -> None:
    res = scalelab.fit("power_law", power_law_data(), y="loss")
    text = res.report()
    assert "power_law" in text and "huber" in text and "alpha" in text
    assert "[[Variables]]" in res.lmfit_report()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y": "nope"}, DataError, "unknown column 'nope'"),
        ({"y": "loss", "x": {"z": "x"}}, LawError, "has no input 'z'"),
        ({"y": "loss", "where": "x < 0"}, DataError, "matched none"),
        ({"y": "loss", "fixed": {"gamma": 1.0}}, LawError, "unknown parameter"),
        ({"y": "loss", "starts": "lattice"}, LawError, "--starts"),
        ({"y": "loss", "coverage": 1.5}, DataError, "coverage"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        scalelab.fit("power_law", power_law_data(), **kwargs)


def test_fewer_points_than_parameters() -> None:
    data = {k: v[:3] for k, v in power_law_data().items()}
    with pytest.raises(DataError, match=r"3 data point.*3 free parameter"):
        scalelab.fit("power_law", data, y="loss")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0, 0.0])
def test_bad_values_where_logs_are_taken(bad: float) -> None:
    data = power_law_data()
    data["loss"] = data["loss"].copy()
    data["loss"][3] = bad
    with pytest.raises(DataError, match="loss"):
        scalelab.fit("power_law", data, y="loss")


def test_unknown_law() -> None:
    with pytest.raises(LawError, match="unknown law 'chinchila'"):
        scalelab.fit("chinchila", power_law_data(), y="loss")


def test_non_convergence_raises_or_is_reported() -> None:
    # a 2-evaluation polish budget cannot converge
    import scalelab.fit.engine as engine
    from scalelab.fit import polish as polish_mod

    original = polish_mod.polish

    def starved(problem, u0, **kw):
        return original(problem, u0, max_nfev=1)

    engine.polish = starved  # type: ignore[assignment]
    try:
        with pytest.raises(FitError, match="did not converge"):
            scalelab.fit("chinchilla", chinchilla_data(11), y="loss", starts=20)
        res = scalelab.fit("chinchilla", chinchilla_data(11), y="loss", starts=20, raise_on_failure=False)
        assert res.converged is False
    finally:
        engine.polish = original  # type: ignore[assignment]
