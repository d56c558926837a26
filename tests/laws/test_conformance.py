"""One conformance check run over every registered law (new laws are picked up automatically).

Each law is checked with its default options and, where it has them, non-default options.
"""

from __future__ import annotations

import doctest
import math
import zlib
from typing import Any

import numpy as np
import pytest

from scalelab.errors import LawError
from scalelab.laws import Law, available_laws, make_law

#: non-default constructor options to check as well, by law name
EXTRA_CONFIGS: dict[str, list[dict[str, Any]]] = {
    "broken_power_law": [{"breaks": 2}],
    "data_mixing": [{"domains": 1}, {"domains": 3}],
}

N_POINTS = 40


def _cases() -> list[Any]:
    cases = []
    for name in available_laws():
        for config in [{}, *EXTRA_CONFIGS.get(name, [])]:
            label = name + "".join(f"-{k}={v}" for k, v in config.items())
            cases.append(pytest.param(name, config, id=label))
    return cases


def sample_inputs(law: Law, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Plausible inputs by name: N, D, U (U <= D), mixture proportions r*, else log-uniform."""
    names = law.inputs
    X: dict[str, np.ndarray] = {}
    mix = [k for k in names if k.startswith("r") and k[1:].isdigit()]
    if mix:
        props = rng.dirichlet(np.ones(len(mix)), size=n)
        X.update({k: props[:, j] for j, k in enumerate(mix)})
    for key in names:
        if key in X:
            continue
        if key == "N":
            X[key] = 10 ** rng.uniform(7, 10, n)
        elif key == "D":
            X[key] = 10 ** rng.uniform(9, 12, n)
        elif key == "U":
            continue
        else:
            X[key] = 10 ** rng.uniform(0, 5, n)
    if "U" in names:
        X["U"] = X["D"] / rng.uniform(1.0, 60.0, n)
    return X


def sample_theta(law: Law, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Parameter vectors drawn inside each parameter's init range (log-uniform for log params)."""
    shape = () if size is None else (size,)
    cols = []
    for p in law.params:
        lo, hi = p.init
        if p.log:
            lo = max(lo, 1e-12)
            cols.append(np.exp(rng.uniform(math.log(lo), math.log(hi), shape)))
        else:
            cols.append(rng.uniform(lo, hi, shape))
    return np.stack(cols, axis=-1)


def in_bounds(law: Law, theta: np.ndarray) -> bool:
    lo = np.array([p.lower for p in law.params])
    hi = np.array([p.upper for p in law.params])
    return bool(np.all((theta >= lo) & (theta <= hi)))


def _unit_scale(law: Law, theta: np.ndarray) -> np.ndarray:
    """Per-parameter scale making derivatives dimensionless: theta for log parameters
    (d/d log theta), max(1, |theta|) otherwise."""
    return np.array(
        [t if p.log else max(1.0, abs(t)) for t, p in zip(theta, law.params, strict=True)]
    )


def _fd_log_jacobian(law: Law, theta: np.ndarray, X: dict[str, np.ndarray], h: float) -> np.ndarray:
    """Central differences of ``log_evaluate`` in dimensionless coordinates, shape (n, P):
    steps of ``h`` in ``log theta`` for log parameters, ``h max(1, |theta|)`` otherwise."""
    cols = []
    for k, p in enumerate(law.params):
        up, down = theta.copy(), theta.copy()
        if p.log:
            up[k] *= math.exp(h)
            down[k] *= math.exp(-h)
        else:
            step = h * max(1.0, abs(theta[k]))
            up[k] += step
            down[k] -= step
        cols.append((law.log_evaluate(up, X) - law.log_evaluate(down, X)) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize(("name", "config"), _cases())
def test_law_conformance(name: str, config: dict[str, Any]) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{name}{sorted(config.items())}".encode()))
    law = make_law(name, **config)
    P = law.n_params

    # --- description: names, ranges, docs
    assert law.name == name
    assert len(set(law.param_names)) == P, "parameter names must be unique"
    assert not set(law.param_names) & set(law.inputs), "parameters and inputs must not share names"
    for p in law.params:
        assert p.lower <= p.init[0] <= p.init[1] <= p.upper, p
        assert not (p.log and p.lower < 0), p
    assert law.equation.strip() and law.reference.strip()
    doc = type(law).__doc__ or ""
    assert "References" in doc and "Examples" in doc and ">>>" in doc
    assert "math::" in doc, "the docstring must show the equation"
    assert any(tok in doc for tok in ("arXiv", "et al")), "the docstring must cite the paper"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(type(law)):
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0, "the docstring example must run"

    # --- synthetic data from the law itself: guess and grid are finite and inside the bounds
    X = sample_inputs(law, N_POINTS, rng)
    for _ in range(3):
        true = sample_theta(law, rng)
        y = law.evaluate(true, X)
        assert y.shape == (N_POINTS,) and np.all(np.isfinite(y)) and np.all(y > 0)
        y_noisy = y * np.exp(rng.normal(0.0, 0.01, N_POINTS))
        g = law.guess(X, y_noisy)
        assert g.shape == (P,)
        assert np.all(np.isfinite(g)) and in_bounds(law, g), f"guess {g} not finite/in bounds"
        assert np.all(np.isfinite(law.evaluate(g, X))), "the guess must give finite predictions"
        grid = law.start_grid(X, y_noisy)
        assert grid.ndim == 2 and grid.shape[1] == P and 1 <= grid.shape[0] <= 5000
        assert np.all(np.isfinite(grid)) and in_bounds(law, grid)

    # --- evaluation shapes for theta (P,), (S, P), (S1, S2, P)
    theta = sample_theta(law, rng, 6)
    flat = law.evaluate(theta, X)
    assert flat.shape == (6, N_POINTS)
    for i in range(6):
        np.testing.assert_allclose(law.evaluate(theta[i], X), flat[i], rtol=1e-12)
    nested = law.evaluate(theta.reshape(2, 3, P), X)
    assert nested.shape == (2, 3, N_POINTS)
    np.testing.assert_allclose(nested.reshape(6, N_POINTS), flat, rtol=1e-12)
    assert law.log_evaluate(theta.reshape(2, 3, P), X).shape == (2, 3, N_POINTS)

    # --- paired evaluation: theta row i with point i
    B = 6
    Xp = {k: v[:B, None] for k, v in X.items()}
    paired = law.evaluate(theta, Xp)
    assert paired.shape == (B, 1)
    expected = [
        law.evaluate(theta[i], {k: v[i : i + 1] for k, v in X.items()})[0] for i in range(B)
    ]
    np.testing.assert_allclose(paired[:, 0], expected, rtol=1e-12)

    # --- log_evaluate agrees with log(evaluate)
    np.testing.assert_allclose(law.log_evaluate(theta, X), np.log(flat), rtol=1e-9, atol=1e-12)

    # --- analytic jacobian agrees with central differences; shapes batch like evaluate
    jac = law.log_jacobian(theta, X)
    if jac is not None:
        assert jac.shape == (6, N_POINTS, P)
        assert law.log_jacobian(theta.reshape(2, 3, P), X).shape == (2, 3, N_POINTS, P)
        h = 1e-6
        for i in range(6):
            fd = _fd_log_jacobian(law, theta[i].copy(), X, h)
            analytic = jac[i] * _unit_scale(law, theta[i])
            # round-off of the differences grows with |log y| / h
            roundoff = 1e-15 * np.max(np.abs(np.log(flat[i]))) / h
            np.testing.assert_allclose(
                analytic, fd, rtol=1e-4, atol=1e-6 + roundoff, err_msg=f"row {i}"
            )
        djac = law.jacobian(theta, X)
        np.testing.assert_allclose(djac, jac * flat[..., None], rtol=1e-12)

    # --- named call, rebuild from config
    values = dict(zip(law.param_names, theta[0], strict=True))
    np.testing.assert_allclose(law(X, **values), flat[0], rtol=1e-12)
    with pytest.raises(LawError):
        law(X, **{**values, "not_a_param": 1.0})
    rebuilt = make_law(name, **law.config())
    assert type(rebuilt) is type(law) and rebuilt.param_names == law.param_names
    assert rebuilt.inputs == law.inputs and rebuilt.config() == law.config()
    np.testing.assert_array_equal(rebuilt.evaluate(theta, X), flat)

    # --- derived quantities batch like theta
    for key, value in law.derived(theta).items():
        assert np.shape(value) == (6,), key

    # --- vectorised: 10^5 points in one call
    big = sample_inputs(law, 100_000, rng)
    out = law.evaluate(theta[:2], big)
    assert out.shape == (2, 100_000) and np.all(np.isfinite(out))
