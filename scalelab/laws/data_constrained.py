"""Muennighoff et al.'s data-constrained law: repeated tokens and excess parameters decay."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from scalelab.errors import LawError
from scalelab.laws._allocation import numeric_compute_optimal
from scalelab.laws.base import Inputs, Law, Param, as_theta, geometric_mean

__all__ = ["DataConstrained"]


class DataConstrained(Law):
    r"""Data-constrained scaling law (Muennighoff et al. 2023, Eq. 5 and App. A).

    .. math:: L(N, D, U) = E + \frac{A}{N'^{\alpha}} + \frac{B}{D'^{\beta}}

    .. math:: D' = U + U R_D^* \left(1 - e^{-R_D / R_D^*}\right), \quad R_D = D/U - 1

    .. math:: N' = U_N + U_N R_N^* \left(1 - e^{-R_N / R_N^*}\right), \quad
              U_N = \min(N, N_{opt}(U)), \quad R_N = N/U_N - 1

    ``N`` is the number of parameters, ``D`` the training tokens and ``U`` the unique tokens
    (``D/U`` epochs). Repeated tokens are worth less and less: ``D'`` saturates at
    ``U (1 + R_D*)``. Parameters beyond ``U_N``, the compute-optimal size for ``U`` tokens,
    decay the same way with constant ``R_N*``. ``N_opt`` is the Chinchilla allocation of the
    law's own ``A, B, alpha, beta`` (Hoffmann et al. Eq. 4 solved for N given D = U)::

        N_opt(U) = G (U G)^(beta / alpha),   G = (alpha A / (beta B))^(1 / (alpha + beta))

    exactly as ``D_to_N`` in the datablations README, so no extra constants are needed.
    ``R_D`` and ``R_N`` are clipped at 0 (``U > D`` counts as no repetition). With one
    epoch and ``N <= N_opt(D)`` the law is Chinchilla's. Evaluated in log space.

    References
    ----------
    Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", arXiv:2305.16264,
    Eq. 5 and App. A; fitted values from huggingface/datablations README, "Parametric Fit".

    Examples
    --------
    >>> import math
    >>> law = DataConstrained()
    >>> p = dict(E=math.exp(0.6254804), A=math.exp(6.255414), B=math.exp(7.3049974),
    ...          alpha=0.3526596, beta=0.3526596, R_D_star=15.387756, R_N_star=5.309743)
    >>> round(float(law(N=6.34e9, D=242e9, U=25e9, **p)[0]), 6)
    2.225644
    """

    name: ClassVar[str] = "data_constrained"
    equation: ClassVar[str] = (
        "L = E + A / N'^alpha + B / D'^beta, D' = U + U R_D* (1 - exp(-R_D / R_D*)), R_D = D/U - 1, "
        "N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)), U_N = min(N, N_opt(U)), R_N = N/U_N - 1"
    )
    reference: ClassVar[str] = "Muennighoff et al. 2023, arXiv:2305.16264 (Eq. 5, App. A)"

    _params = (
        Param("E", 0.0, math.inf, log=True, init=(0.3, 3.0), description="irreducible loss"),
        Param("A", 0.0, math.inf, log=True, init=(1.0, 1e8), description="model-size coefficient"),
        Param("B", 0.0, math.inf, log=True, init=(1.0, 1e8), description="data coefficient"),
        Param("alpha", 1e-4, 5.0, init=(0.05, 1.0), description="model-size exponent"),
        Param("beta", 1e-4, 5.0, init=(0.05, 1.0), description="data exponent"),
        Param(
            "R_D_star",
            0.0,
            math.inf,
            log=True,
            init=(0.5, 100.0),
            description="repetitions after which repeated data loses 1 - 1/e of its value",
        ),
        Param(
            "R_N_star",
            0.0,
            math.inf,
            log=True,
            init=(0.5, 100.0),
            description="same decay constant for parameters in excess of U_N",
        ),
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D", "U")

    @property
    def params(self) -> tuple[Param, ...]:
        return self._params

    # ----------------------------------------------------------------- evaluation
    @staticmethod
    def _log_effective(
        log_u: np.ndarray, r: np.ndarray, r_star: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``log(U + U R* (1 - exp(-R/R*)))`` and ``g = 1 - exp(-R/R*)``."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            g = -np.expm1(-r / r_star)
            return log_u + np.log1p(r_star * g), g

    def _parts(self, theta: np.ndarray, X: Inputs) -> dict[str, np.ndarray]:
        theta = as_theta(theta, 7)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_e, log_a, log_b = (np.log(theta[..., i, None]) for i in range(3))
            alpha, beta = theta[..., 3, None], theta[..., 4, None]
            rd_star, rn_star = theta[..., 5, None], theta[..., 6, None]
            log_n, log_d, log_u = np.log(X["N"]), np.log(X["D"]), np.log(X["U"])
            # N_opt(U) = G (U G)^(beta/alpha), log G = (log(alpha A) - log(beta B)) / (alpha + beta)
            log_g = (np.log(alpha) + log_a - np.log(beta) - log_b) / (alpha + beta)
            log_nopt = (1.0 + beta / alpha) * log_g + beta / alpha * log_u
            capped = log_nopt < log_n  # U_N = N_opt(U) < N: some parameters are in excess
            log_un = np.where(capped, log_nopt, log_n)
            r_n = np.maximum(np.expm1(log_n - log_un), 0.0)
            r_d = np.maximum(np.expm1(log_d - log_u), 0.0)
        log_np, g_n = self._log_effective(log_un, r_n, rn_star)
        log_dp, g_d = self._log_effective(log_u + 0.0 * log_d, r_d, rd_star)
        t_n = log_a - alpha * log_np
        t_d = log_b - beta * log_dp
        t_n, t_d, t_e = np.broadcast_arrays(t_n, t_d, log_e + 0.0 * t_n)
        return {
            "terms": np.stack([t_n, t_d, t_e]),
            "log_np": log_np,
            "log_dp": log_dp,
            "g_n": g_n,
            "g_d": g_d,
            "r_n": r_n,
            "r_d": r_d,
            "capped": capped,
            "log_un": log_un,
            "log_g": log_g,
            "log_u": log_u,
            "log_n": log_n,
        }

    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        return np.exp(self.log_evaluate(theta, X))

    def log_evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        terms = self._parts(theta, X)["terms"]
        top = terms.max(axis=0)
        return top + np.log(np.exp(terms - top).sum(axis=0))

    def log_jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """Analytic ``d log L / d theta``, including the dependence of ``U_N`` on ``A, B,
        alpha, beta`` when the parameter count is capped (``N > N_opt(U)``)."""
        theta = as_theta(theta, 7)
        q = self._parts(theta, X)
        terms = q["terms"]
        top = terms.max(axis=0)
        w = np.exp(terms - top)
        w_n, w_d, w_e = w / w.sum(axis=0)
        a_coef, b_coef = theta[..., 1, None], theta[..., 2, None]
        alpha, beta = theta[..., 3, None], theta[..., 4, None]
        rd_star, rn_star = theta[..., 5, None], theta[..., 6, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # d log N' / d log U_N: N' = U_N (1 + R* g(R)), R = N/U_N - 1 (only when capped)
            e_n = 1.0 - q["g_n"]
            ratio_n = 1.0 + rn_star * q["g_n"]  # N' / U_N
            dlnp_dlun = np.where(q["capped"], (ratio_n - e_n * (q["r_n"] + 1.0)) / ratio_n, 1.0)
            # d log X' / d R*: (g - e R / R*) / (1 + R* g)
            dlnp_drn = (q["g_n"] - e_n * q["r_n"] / rn_star) / ratio_n
            e_d = 1.0 - q["g_d"]
            dldp_drd = (q["g_d"] - e_d * q["r_d"] / rd_star) / (1.0 + rd_star * q["g_d"])
            # log U_N = (1 + beta/alpha) log G + (beta/alpha) log U when capped
            s = alpha + beta
            k = 1.0 + beta / alpha
            log_g, log_u = q["log_g"], q["log_u"]
            dlun_da = k / (s * a_coef)
            dlun_db = -k / (s * b_coef)
            dlun_dalpha = -beta / alpha**2 * (log_g + log_u) + k * (1.0 / alpha - log_g) / s
            dlun_dbeta = (log_g + log_u) / alpha + k * (-1.0 / beta - log_g) / s
            cap = np.where(q["capped"], 1.0, 0.0)
            # t_n = log A - alpha log N'
            dtn_dlun = -alpha * dlnp_dlun * cap
            jac = [
                w_e / theta[..., 0, None],
                w_n * (1.0 / a_coef + dtn_dlun * dlun_da),
                w_d / b_coef + w_n * dtn_dlun * dlun_db,
                w_n * (-q["log_np"] + dtn_dlun * dlun_dalpha),
                -w_d * q["log_dp"] + w_n * dtn_dlun * dlun_dbeta,
                -w_d * beta * dldp_drd,
                -w_n * alpha * dlnp_drn,
            ]
        return np.stack(np.broadcast_arrays(*jac), axis=-1)

    # ----------------------------------------------------------------- starts
    def _data(self, X: Inputs, y: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        y = np.asarray(y, dtype=float)
        keep = np.isfinite(y) & (y > 0)
        for key in self.inputs:
            keep &= np.isfinite(X[key]) & (X[key] > 0)
        if not np.any(keep):
            raise LawError(
                "data_constrained: no point has positive N, D, U and loss; the law needs positive data"
            )
        return {k: np.asarray(X[k], dtype=float)[keep] for k in self.inputs}, y[keep]

    @staticmethod
    def _row(
        y_floor_frac: float,
        share: float,
        alpha: float,
        beta: float,
        rd: float,
        rn: float,
        y_min: float,
        y_mid: float,
        n_mid: float,
        d_mid: float,
    ) -> tuple[float, ...]:
        """A parameter vector putting ``share`` of the median excess loss on the N-term."""
        e = y_floor_frac * y_min
        excess = max(y_mid - e, 1e-3 * y_mid)
        a = share * excess * math.exp(min(alpha * math.log(n_mid), 700.0))
        b = (1.0 - share) * excess * math.exp(min(beta * math.log(d_mid), 700.0))
        return (e, a, b, alpha, beta, rd, rn)

    def _mids(
        self, X: Mapping[str, np.ndarray], y: np.ndarray
    ) -> tuple[float, float, float, float]:
        # effective data at the published decay constant, so heavily repeated runs count less
        u, d = X["U"], X["D"]
        r_d = np.maximum(d / u - 1.0, 0.0)
        d_eff = u * (1.0 + 15.0 * -np.expm1(-r_d / 15.0))
        return float(np.min(y)), float(np.median(y)), geometric_mean(X["N"]), geometric_mean(d_eff)

    def guess(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Chinchilla-style: ``E = 0.8 min(y)``, exponents 0.3, the median excess split evenly
        between the two terms at the median ``N`` and effective ``D``; ``R_D* = 15``,
        ``R_N* = 5`` (about Muennighoff et al.'s fitted values)."""
        X, y = self._data(X, y)
        y_min, y_mid, n_mid, d_mid = self._mids(X, y)
        return self.clip(
            np.array(self._row(0.8, 0.5, 0.3, 0.3, 15.0, 5.0, y_min, y_mid, n_mid, d_mid))
        )

    def start_grid(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Floors {0.5, 0.8, 0.95} x min(y), splits {0.25, 0.5, 0.75} of the excess,
        alpha, beta in {0.15, 0.3, 0.5, 0.8}, R_D* in {2, 5, 15, 50}, R_N* in {1, 5, 20}
        (1,728 starts, A and B matched to the data)."""
        X, y = self._data(X, y)
        mids = self._mids(X, y)
        exps = (0.15, 0.3, 0.5, 0.8)
        rows = [
            self._row(fl, sh, al, be, rd, rn, *mids)
            for fl, sh, al, be, rd, rn in itertools.product(
                (0.5, 0.8, 0.95),
                (0.25, 0.5, 0.75),
                exps,
                exps,
                (2.0, 5.0, 15.0, 50.0),
                (1.0, 5.0, 20.0),
            )
        ]
        return self.clip(np.array(rows))

    # ----------------------------------------------------------------- derived
    def derived(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Chinchilla allocation exponents ``a``, ``b`` (with unlimited unique data) and the
        largest effective multiples of unique data / capped parameters, ``1 + R*``."""
        theta = as_theta(theta, 7)
        alpha, beta = theta[..., 3], theta[..., 4]
        with np.errstate(divide="ignore", invalid="ignore"):
            return {
                "a": beta / (alpha + beta),
                "b": alpha / (alpha + beta),
                "max_effective_data_multiple": 1.0 + theta[..., 5],
                "max_effective_param_multiple": 1.0 + theta[..., 6],
            }

    def compute_optimal(
        self,
        theta: np.ndarray,
        compute: float | np.ndarray,
        *,
        unique_tokens: float | np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Compute-optimal ``N``, ``D`` and loss for ``C = 6 N D`` with at most ``unique_tokens``.

        ``U = min(unique_tokens, D)`` along the budget line; ``unique_tokens=None`` means
        unlimited data (``U = D``, no repetition; parameters above ``N_opt(D)`` still decay).
        Golden-section search over ``log N``, batched over ``theta``.
        """
        theta = as_theta(theta, 7)
        batch = theta.shape[:-1]
        u_max = None
        if unique_tokens is not None:
            u_max = np.broadcast_to(np.asarray(unique_tokens, dtype=float), batch).reshape(-1, 1)
            if np.any(~(u_max > 0)):
                raise LawError(
                    "data_constrained: unique_tokens must be positive; pass the number of unique tokens"
                )
        return numeric_compute_optimal(_BudgetLine(self, u_max), theta, compute)


class _BudgetLine(Law):
    """The law of (N, D) obtained by setting ``U = min(u_max, D)`` (``U = D`` if ``u_max`` is None).

    Only used by :meth:`DataConstrained.compute_optimal`: ``u_max`` is aligned with the flattened
    batch of parameter vectors that :func:`numeric_compute_optimal` evaluates row by row.
    """

    name: ClassVar[str] = "data_constrained_budget_line"

    def __init__(self, law: DataConstrained, u_max: np.ndarray | None) -> None:
        self._law = law
        self._u_max = u_max

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    @property
    def params(self) -> tuple[Param, ...]:
        return self._law.params

    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        d = X["D"]
        u = d if self._u_max is None else np.minimum(self._u_max, d)
        return self._law.evaluate(theta, {"N": X["N"], "D": d, "U": u})
