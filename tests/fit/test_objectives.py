from __future__ import annotations

import numpy as np
import pytest
from scipy.special import huber

from scalelab.errors import LawError
from scalelab.fit.objectives import Asymmetric, Huber, SquaredError, make_objective

R = np.linspace(-0.05, 0.05, 401)


@pytest.mark.parametrize("delta", [1e-3, 1e-2, 0.1])
def test_huber_matches_scipy_special_huber(delta: float) -> None:
    np.testing.assert_allclose(Huber(delta=delta).rho(R), huber(delta, R), rtol=1e-12, atol=0)


@pytest.mark.parametrize("obj", [Huber(delta=1e-2), SquaredError(), Asymmetric(penalty=3.0)])
def test_psi_is_the_derivative_of_rho(obj) -> None:
    r = R[(np.abs(np.abs(R) - 1e-2) > 1e-4) & (np.abs(R) > 1e-4)]  # away from the kinks
    h = 1e-7
    fd = (obj.rho(r + h) - obj.rho(r - h)) / (2 * h)
    np.testing.assert_allclose(obj.psi(r), fd, rtol=1e-5, atol=1e-9)


def test_huber_irls_quadratic_majorises_the_loss() -> None:
    obj = Huber(delta=1e-3)
    for r0 in (-0.02, -5e-4, 3e-4, 0.01):
        q = obj.rho(np.array(r0)) + 0.5 * obj.irls(np.array(r0)) * (R**2 - r0**2)
        assert np.all(q >= obj.rho(R) - 1e-15)


def test_objective_is_summed_not_averaged() -> None:
    obj = Huber(delta=1e-3)
    r = np.array([0.01, -0.02, 0.0005])
    single = obj.total(r, np.ones(3))
    doubled = obj.total(np.concatenate([r, r]), np.ones(6))
    assert doubled == pytest.approx(2 * single)


def test_asymmetric_penalises_over_estimates() -> None:
    obj = Asymmetric(penalty=4.0)
    assert obj.rho(np.array(0.1)) == pytest.approx(4 * obj.rho(np.array(-0.1)))


def test_non_finite_residuals_give_infinite_objective() -> None:
    assert Huber().total(np.array([0.1, np.nan]), np.ones(2)) == np.inf


def test_make_objective() -> None:
    assert make_objective("huber").delta == 1e-3
    assert make_objective("huber", delta=0.01).delta == 0.01
    assert make_objective("mse_linear").space == "linear"
    assert make_objective("mse").space == "log"
    with pytest.raises(LawError, match="unknown loss 'l1'"):
        make_objective("l1")
    with pytest.raises(LawError, match="--delta only applies"):
        make_objective("mse", delta=0.1)
    with pytest.raises(LawError, match="positive"):
        make_objective("huber", delta=-1)
