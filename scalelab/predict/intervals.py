"""Prediction intervals for new runs: parameter uncertainty plus observation noise.

:meth:`FitResult.predict` gives an interval for the *law* at a point (parameter uncertainty
only). A run trained at that point also scatters around the law, so the interval for the
*run's* loss must add that scatter. Here both are combined by simulation, in the fit's
residual space (``log y`` for log-space objectives, ``y`` for linear ones):

1. **Parameter draws.** The fit's bootstrap refits when it has them (``bootstrap > 0``);
   otherwise draws from a normal with the Hessian covariance in the optimiser's coordinates
   (log units for log-scaled parameters), clipped to the bounds.
2. **Noise.** A :class:`NoiseModel` gives the noise standard deviation at each point,
   ``sd(d) = sqrt(scale^2 + growth^2 d^2)``, where ``d`` is the point's distance outside the
   fitted range (:func:`scalelab.predict.extrapolation.extrapolation_distance`; 0 inside).
3. **Simulation.** ``n_sim`` values per point: the law under a parameter draw (draws used in
   turn) plus a normal noise draw; the interval is their ``(1 - coverage) / 2`` and
   ``(1 + coverage) / 2`` quantiles, mapped back from log space.

Noise models, from cheapest to most honest about extrapolation:

* :func:`noise_from_fit` -- the RMS residual the fit recorded (in-sample; needs no data).
* :func:`residual_noise` -- ``1.4826 x MAD`` of the fit's in-sample residuals (robust).
* :func:`extrapolation_noise` -- forward validation within the fitted rows: sort them by
  size, fit the smaller ones, predict the next larger group, repeat; then fit
  ``r^2 = scale^2 + growth^2 d^2`` (non-negative least squares) to the in-sample residuals
  (``d = 0``) and the forward residuals (at their own distance ``d`` outside the fold's fit).
  It measures how the error of a law grows as it is carried beyond its data, which in-sample
  residuals cannot see. It refits the law ``folds - 1`` times.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from scalelab.errors import DataError, FitError
from scalelab.predict.extrapolation import extrapolation_distance

if TYPE_CHECKING:
    from scalelab.fit import FitResult

__all__ = [
    "MAD_TO_SD",
    "NoiseModel",
    "extrapolation_noise",
    "fit_rows",
    "fit_space_residuals",
    "noise_from_fit",
    "parameter_draws",
    "prediction_interval",
    "refit_options",
    "residual_noise",
]

#: 1.4826 x MAD estimates the standard deviation of normal data
MAD_TO_SD = 1.4826

#: simulated values per point (at least the number of parameter draws)
N_SIM = 4000


@dataclass(frozen=True)
class NoiseModel:
    """Scatter of single runs around the law, in the fit's residual space.

    ``sd(d) = sqrt(scale^2 + growth^2 d^2)`` at distance ``d`` outside the fitted range.

    Attributes
    ----------
    space : {"log", "linear"}
        Residual space: ``log y - log yhat`` or ``y - yhat``.
    scale : float
        Noise standard deviation inside the fitted range.
    growth : float
        Growth of the standard deviation per unit of distance (0: constant noise).
    method : str
        How it was estimated (``fit-rmse``, ``residual-mad``, ``extrapolation``, ``given``).
    n_residuals : int
        Residuals it was estimated from (in-sample plus forward).
    """

    space: str
    scale: float
    growth: float = 0.0
    method: str = "given"
    n_residuals: int = 0

    def __post_init__(self) -> None:
        if self.space not in ("log", "linear"):
            raise DataError(f"noise space must be 'log' or 'linear', got {self.space!r}")
        for name in ("scale", "growth"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise DataError(f"noise {name} must be a finite non-negative number, got {value!r}")

    def sd(self, distance: Any = 0.0) -> np.ndarray:
        """Noise standard deviation at the given distance(s) outside the fitted range."""
        d = np.asarray(distance, dtype=float)
        return np.sqrt(self.scale**2 + (self.growth * d) ** 2)

    def describe(self) -> str:
        """One line: method, scale and growth, in percent for log space."""
        unit, k = ("%", 100.0) if self.space == "log" else ("", 1.0)
        text = f"noise {self.method}: sd {k * self.scale:.3g}{unit}"
        if self.growth:
            text += (
                f" + {k * self.growth:.3g}{unit} per e-fold outside the fitted range "
                "(in quadrature)"
            )
        return text + f" ({self.space} space, {self.n_residuals} residuals)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "scale": self.scale,
            "growth": self.growth,
            "method": self.method,
            "n_residuals": self.n_residuals,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NoiseModel:
        try:
            return cls(
                space=str(d["space"]),
                scale=float(d["scale"]),
                growth=float(d.get("growth", 0.0)),
                method=str(d.get("method", "given")),
                n_residuals=int(d.get("n_residuals", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"malformed noise model: {type(exc).__name__}: {exc}") from None


# ----------------------------------------------------------------------------- fit rows
def _space(result: FitResult) -> str:
    return str(result.options.get("space", "log"))


def fit_rows(result: FitResult, data: Any) -> Any:
    """The rows ``result`` was fitted on: ``data`` read and filtered by the fit's ``where``.

    Checks the table's fingerprint against the one the fit recorded, so residuals are never
    computed on other data than the fit's.

    Raises
    ------
    DataError
        If the filtered data is not the data the fit was made on.
    """
    from scalelab.store import read_table

    table = read_table(data)
    where = result.options.get("where")
    if where:
        table = table.where(where)
    expected = result.data.get("fingerprint")
    if expected and table.fingerprint() != expected:
        shown = f' with --where "{where}"' if where else ""
        raise DataError(
            f"{table.source}{shown} is not the data this {result.law.name} fit was made on "
            f"({len(table)} rows, the fit had {result.data.get('n_rows', '?')}); pass the same data"
        )
    return table


def _inputs(result: FitResult, table: Any) -> dict[str, np.ndarray]:
    return {k: table.numeric(col) for k, col in result.inputs.items()}


def fit_space_residuals(result: FitResult, X: Mapping[str, Any], y: Any) -> np.ndarray:
    """Residuals ``observed - predicted`` in the fit's space (log or linear), shape (n,)."""
    pts = result.law.prepare_inputs(X)
    y = np.asarray(y, dtype=float)
    theta = result.theta[None]
    with np.errstate(all="ignore"):
        if _space(result) == "log":
            return np.log(y) - result.law.log_evaluate(theta, pts)[0]
        return y - result.law.evaluate(theta, pts)[0]


def noise_from_fit(result: FitResult) -> NoiseModel:
    """Constant noise equal to the RMS in-sample residual recorded in the fit.

    Needs no data, so it works on a saved fit file; it is not robust to outliers and, being
    in-sample, says nothing about how errors grow beyond the fitted range.
    """
    rmse = result.stats.get("rmse_residual_space")
    if rmse is None or not math.isfinite(float(rmse)):
        raise DataError("the fit records no residual RMS; refit it with this version of scalelab")
    return NoiseModel(_space(result), float(rmse), 0.0, "fit-rmse", int(result.n_points))


def _robust_scale(r: np.ndarray) -> float:
    r = r[np.isfinite(r)]
    return float(MAD_TO_SD * np.median(np.abs(r - np.median(r))))


def residual_noise(result: FitResult, data: Any) -> NoiseModel:
    """Constant noise ``1.4826 x MAD`` of the fit's in-sample residuals (robust scale).

    Parameters
    ----------
    result : FitResult
    data : path, dataset name or Table
        The data the fit was made on (before its ``where`` filter).
    """
    table = fit_rows(result, data)
    r = fit_space_residuals(result, _inputs(result, table), table.numeric(result.y))
    return NoiseModel(_space(result), _robust_scale(r), 0.0, "residual-mad", int(r.size))


def refit_options(result: FitResult) -> dict[str, Any]:
    """Keyword arguments for :func:`scalelab.fit` that repeat ``result``'s fit settings.

    The loss, its space and constants, fixed / tied / bounded parameters, the starts (explicit
    start arrays are not recorded, so they become ``"grid"``), ``keep``, weights, seed and
    workers. No bootstrap and no ``where`` (callers pass the rows).
    """
    o = result.options
    kw: dict[str, Any] = {"loss": o.get("loss", "huber"), "space": o.get("space")}
    if o.get("delta") is not None:
        kw["delta"] = float(o["delta"])
    if o.get("penalty") is not None:
        kw["penalty"] = float(o["penalty"])
    starts = o.get("starts", "grid")
    if isinstance(starts, str) and starts.startswith("random(") and starts.endswith(")"):
        starts = int(starts[7:-1])
    elif starts not in ("grid", "random"):
        starts = "grid"
    kw.update(
        starts=starts,
        keep=o.get("keep", 0.1),
        weights=o.get("weights"),
        fixed=dict(o.get("fixed") or {}),
        tie=dict(o.get("tied") or {}),
        bounds={k: tuple(v) for k, v in (o.get("bounds") or {}).items()},
        seed=int(o.get("seed", 0)),
        workers=o.get("workers"),
    )
    return kw


def extrapolation_noise(
    result: FitResult,
    data: Any,
    *,
    folds: int = 4,
    order_by: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> NoiseModel:
    """Noise that grows outside the fitted range, measured by forward validation.

    The fitted rows are cut into ``folds`` groups of about equal size by the input
    ``order_by`` (default: the law's first input, ``N`` for laws of N and D). For each
    ``j = 1 .. folds-1`` the law is refitted (same settings, no bootstrap) on the groups below
    ``j`` and predicts group ``j``; each forward residual gets its distance ``d`` outside that
    refit's range. Then ``scale`` and ``growth`` solve the non-negative least-squares problem
    ``r^2 ~ scale^2 + growth^2 d^2`` over the in-sample residuals of ``result`` (``d = 0``) and
    the forward residuals (a moment estimate of the variance, not a robust one).

    Parameters
    ----------
    result : FitResult
    data : path, dataset name or Table
        The data the fit was made on (before its ``where`` filter).
    folds : int
        Number of size groups (at least 2); each refit must keep more rows than the law has
        free parameters plus one.
    order_by : str, optional
        The law input to order the rows by.
    progress : callable, optional
        Receives one line per refit.

    Raises
    ------
    DataError
        If there are too few rows for ``folds`` groups, or ``order_by`` is not an input.
    """
    from scipy.optimize import nnls

    from scalelab.fit import fit

    say = progress or (lambda _msg: None)
    law = result.law
    if not isinstance(folds, int) or folds < 2:
        raise DataError(f"extrapolation noise needs at least 2 folds, got {folds!r}")
    key = order_by or law.inputs[0]
    if key not in law.inputs:
        raise DataError(
            f"order_by {key!r} is not an input of {law.name}; choose one of {', '.join(law.inputs)}"
        )
    table = fit_rows(result, data)
    X = _inputs(result, table)
    y = table.numeric(result.y)
    r0 = fit_space_residuals(result, X, y)
    v = X[key]
    edges = np.quantile(v, np.linspace(0.0, 1.0, folds + 1))
    need = result.n_free + 2
    first = int(np.sum(v < edges[1]))
    if first < need:
        raise DataError(
            f"too few rows for extrapolation noise: the smallest of {folds} groups by {key} has "
            f"{first} row(s) and a refit of {law.name} needs {need}; use fewer folds or "
            "residual noise"
        )
    opts = refit_options(result)
    res_f: list[np.ndarray] = []
    dist_f: list[np.ndarray] = []
    for j in range(1, folds):
        train = v < edges[j]
        test = (v >= edges[j]) & ((v < edges[j + 1]) if j < folds - 1 else np.ones_like(train))
        if not test.any():
            continue
        say(
            f"extrapolation noise: refit {j}/{folds - 1} on {int(train.sum())} rows, "
            f"predict {int(test.sum())}"
        )
        sub = fit(law, table.filter(train), x=dict(result.inputs), y=result.y, **opts)
        Xt = {k: a[test] for k, a in X.items()}
        res_f.append(fit_space_residuals(sub, Xt, y[test]))
        ranges = {k: (float(a[train].min()), float(a[train].max())) for k, a in X.items()}
        dist_f.append(extrapolation_distance(ranges, Xt))
    r = np.concatenate([r0, *res_f])
    d = np.concatenate([np.zeros_like(r0), *dist_f])
    ok = np.isfinite(r)
    coef, _ = nnls(np.column_stack([np.ones(ok.sum()), d[ok] ** 2]), r[ok] ** 2)
    return NoiseModel(
        _space(result),
        float(np.sqrt(coef[0])),
        float(np.sqrt(coef[1])),
        "extrapolation",
        int(ok.sum()),
    )


# ----------------------------------------------------------------------------- draws
def parameter_draws(result: FitResult, *, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, str]:
    """Parameter vectors (B, P) representing the fit's uncertainty, and their origin.

    The bootstrap refits when the fit has them (``"bootstrap"``); otherwise ``n`` draws from
    the normal approximation with the Hessian covariance, in the optimiser's coordinates
    (log units for log-scaled parameters) and clipped to the bounds (``"hessian-normal"``).

    Raises
    ------
    FitError
        If the fit has neither bootstrap refits nor a finite covariance.
    """
    if result.bootstrap is not None and len(result.bootstrap):
        return np.asarray(result.bootstrap, dtype=float), "bootstrap"
    cov = result.covariance
    if cov is None or not np.all(np.isfinite(cov)):
        raise FitError(
            f"the {result.law.name} fit has no parameter uncertainty (no bootstrap and a "
            "singular Hessian); refit with --bootstrap 1000"
        )
    from scalelab.fit import Parametrization

    opts = result.options
    param = Parametrization(
        result.law,
        fixed=dict(opts.get("fixed") or {}),
        tied=dict(opts.get("tied") or {}),
        bounds={k: tuple(v) for k, v in (opts.get("bounds") or {}).items()},
    )
    u0 = param.to_internal(result.theta)
    vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    rng = np.random.default_rng(seed)
    u = u0 + rng.standard_normal((n, u0.size)) @ root.T
    lo, hi = param.internal_bounds()
    return param.to_natural(np.clip(u, lo, hi)), "hessian-normal"


# ----------------------------------------------------------------------------- intervals
def prediction_interval(
    result: FitResult,
    X: Mapping[str, Any] | None = None,
    /,
    *,
    noise: NoiseModel | None = None,
    coverage: float | None = None,
    distance: Any = None,
    n_sim: int = N_SIM,
    seed: int = 0,
    **inputs: Any,
) -> Any:
    """Predict new runs at the given inputs with intervals that include observation noise.

    Parameters
    ----------
    result : FitResult
    X : mapping of input -> values, optional
        Inputs (or pass them as keywords: ``N=70e9, D=1.4e12``).
    noise : NoiseModel, optional
        Default :func:`noise_from_fit` (the fit's in-sample RMS residual, constant).
    coverage : float, optional
        Interval coverage (default the fit's).
    distance : array, optional
        Each point's distance outside the fitted range (default from the fit's recorded input
        ranges, :func:`~scalelab.predict.extrapolation.extrapolation_distance`).
    n_sim : int
        Simulated values per point (raised to the number of parameter draws if fewer).
    seed : int
        Seed of the noise draws (and of Hessian parameter draws).

    Returns
    -------
    Prediction
        ``mean`` is the best fit's prediction; ``lower``/``upper`` the interval for a new run;
        ``method`` names the parameter draws and the noise model.

    Examples
    --------
    >>> pred = prediction_interval(res, N=70e9, D=1.4e12, noise=noise)  # doctest: +SKIP
    """
    from scalelab.fit import Prediction

    level = result.coverage if coverage is None else float(coverage)
    if not 0 < level < 1:
        raise DataError(f"coverage must be between 0 and 1, got {level}")
    pts = result.law.prepare_inputs({**dict(X or {}), **inputs})
    bad = [k for k, v in pts.items() if not np.all(np.isfinite(v))]
    if bad:
        raise DataError(f"prediction inputs {bad} must be finite numbers")
    noise = noise_from_fit(result) if noise is None else noise
    space = _space(result)
    if noise.space != space:
        raise DataError(f"noise model is in {noise.space} space but the fit is in {space} space")
    n = len(next(iter(pts.values())))
    if distance is None:
        ranges = {k: tuple(v) for k, v in result.data.get("ranges", {}).items()}
        distance = extrapolation_distance(ranges, pts, names=[k for k in pts if k in ranges])
    sd = np.broadcast_to(noise.sd(distance), (n,))
    with np.errstate(all="ignore"):  # points outside the law's domain give NaN, not warnings
        mean = result.law.evaluate(result.theta[None], pts)[0]
    draws, label = parameter_draws(result, seed=seed)
    sims = max(int(n_sim), len(draws))
    which = np.arange(sims) % len(draws)
    rng = np.random.default_rng(seed)
    alpha = (1.0 - level) / 2.0
    lower, upper = np.empty(n), np.empty(n)
    block = max(1, 2_000_000 // sims)
    f = result.law.log_evaluate if space == "log" else result.law.evaluate
    for start in range(0, n, block):
        sl = slice(start, min(n, start + block))
        with np.errstate(all="ignore"):
            central = f(draws, {k: v[sl] for k, v in pts.items()})  # (B, m)
        sim = central[which] + sd[sl] * rng.standard_normal((sims, sl.stop - sl.start))
        with warnings.catch_warnings():  # a point where every draw is NaN gives NaN bounds
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanquantile(sim, [alpha, 1.0 - alpha], axis=0)
        lower[sl], upper[sl] = lo, hi
    if space == "log":
        lower, upper = np.exp(lower), np.exp(upper)
    return Prediction(mean, lower, upper, level, f"{label}+noise({noise.method})")
