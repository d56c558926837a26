"""The scale caveat: does an effect measured on small models persist at a larger size?

Data effects (the speedup from a mixture, a format or a curriculum) found on small models can
shrink or vanish on large ones. Given the effect measured at several model sizes, this module
fits the effect against size and says whether it is predicted to persist at a target size.

Method (also in docs/predict_skills.md):

* **The line.** ``y = a + b (log N - log N_ref)``, with ``y = log(effect)`` for ratio effects
  (speedups; neutral value 1) or ``y = effect`` for differences (neutral value 0), and
  ``N_ref`` the geometric mean of the measured sizes.
* **Weights.** Each measurement may carry an interval ``[lower, upper]`` (for instance the
  pooled-t interval of :func:`scalelab.curves.speedup`); its standard error in ``y`` units is
  ``(g(upper) - g(lower)) / (2 z)``. Sizes also scatter around any line by more than their
  measurement error (architecture and tuning differ between sizes), so the fit is a
  random-effects meta-regression: the extra variance ``tau^2`` is the Paule-Mandel estimate
  (the value making the weighted residual sum of squares equal its degrees of freedom,
  ``n - 2``; zero when the measurement errors already explain the scatter) and every point is
  weighted by ``1 / (se_i^2 + tau^2)``. Without intervals this is ordinary least squares.
  Measurements that share a size (seeds, several tasks) share its deviation from the line, so
  they are first combined into one point per size (their inverse-variance weighted mean); the
  fit has ``n = number of distinct sizes``.
* **The prediction interval** at a new size ``N`` has variance ``x' Cov x + tau^2`` (the
  uncertainty of the line plus the scatter of one more size about it) and uses Student's t
  with ``n - 2`` degrees of freedom. ``Cov`` is the modified Hartung-Knapp covariance:
  ``(X' W X)^-1`` scaled by ``max(1, Q / (n - 2))``, with ``Q`` the weighted residual sum of
  squares (``Q / (n - 2)`` is exactly 1 whenever ``tau^2 > 0``). The floor at 1 keeps sizes
  that happen to sit closer to the line than their errors imply from narrowing the interval
  below what those errors alone give (Roever, Knapp & Friede 2015, BMC Med Res Methodol
  15:99), which matters most with 3 sizes (1 degree of freedom). On synthetic trends with 5
  sizes the interval's coverage stays near nominal where the normal quantile under-covers
  (docs).
* **Verdict** at the target size, against a ``threshold`` (default the neutral value, i.e.
  "any effect at all"): ``persists`` when the whole interval lies on the side of the threshold
  where the measured effects lie; ``vanishes`` when it lies wholly on the other side (the
  effect is predicted gone, or reversed); ``undetermined`` when it straddles the threshold.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from scalelab.errors import DataError

__all__ = [
    "KINDS",
    "MIN_SIZES",
    "Persistence",
    "SizeTrend",
    "fit_size_trend",
    "persistence",
    "persistence_from_table",
]

#: distinct model sizes needed for a trend against N (a line plus a check of its scatter)
MIN_SIZES = 3
#: effect kinds: ``ratio`` (fitted in log, neutral 1) and ``difference`` (linear, neutral 0)
KINDS = ("ratio", "difference")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def _check_coverage(coverage: float, name: str = "coverage") -> None:
    if not (isinstance(coverage, (int, float)) and 0 < coverage < 1):
        raise DataError(f"{name} must be between 0 and 1 (e.g. 0.95), got {coverage!r}")


# ------------------------------------------------------------------------------ the trend
@dataclass(frozen=True)
class SizeTrend:
    """A weighted straight line of ``y`` against ``log N`` with between-size scatter.

    Attributes
    ----------
    intercept : float
        Fitted ``y`` at the reference size ``exp(log_n_ref)``.
    slope : float
        Change of ``y`` per unit of ``log N`` (per factor e in size).
    slope_low, slope_high : float
        ``coverage`` interval of the slope (Student's t, ``dof`` degrees of freedom).
    tau : float
        Scatter of sizes about the line beyond their measurement error (standard deviation in
        ``y`` units; the Paule-Mandel estimate, or the residual standard deviation without
        measurement errors).
    log_n_ref : float
        Mean of the measured ``log N``.
    covariance : tuple of tuple of float
        2 x 2 covariance of ``(intercept, slope)``.
    n_points, n_sizes, dof : int
        Measurements, distinct sizes (one fitted point each), and residual degrees of freedom
        (``n_sizes - 2``).
    weighted : bool
        Whether measurement standard errors were used.
    size_range : (float, float)
        Smallest and largest measured size.
    coverage : float
    """

    intercept: float
    slope: float
    slope_low: float
    slope_high: float
    tau: float
    log_n_ref: float
    covariance: tuple[tuple[float, float], tuple[float, float]]
    n_points: int
    n_sizes: int
    dof: int
    weighted: bool
    size_range: tuple[float, float]
    coverage: float

    def predict(
        self, n: float | Sequence[float] | np.ndarray, *, coverage: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fitted ``y`` at sizes ``n`` with the prediction interval for one more size.

        Parameters
        ----------
        n : float or array_like
            Model sizes (> 0).
        coverage : float, optional
            Interval coverage; defaults to the trend's.

        Returns
        -------
        (mean, low, high) : tuple of numpy.ndarray
            In ``y`` units (log effect for ratios), one value per size.
        """
        level = self.coverage if coverage is None else coverage
        _check_coverage(level)
        sizes = np.atleast_1d(np.asarray(n, dtype=np.float64))
        if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
            raise DataError(f"target sizes must be positive numbers, got {sizes.tolist()}")
        from scipy import stats

        x = np.log(sizes) - self.log_n_ref
        mean = self.intercept + self.slope * x
        cov = np.asarray(self.covariance)
        var = cov[0, 0] + 2 * x * cov[0, 1] + x**2 * cov[1, 1] + self.tau**2
        half = float(stats.t.ppf(0.5 + level / 2, self.dof)) * np.sqrt(np.maximum(var, 0.0))
        return mean, mean - half, mean + half

    @classmethod
    def from_dict(cls, d: Any) -> SizeTrend:
        """Rebuild a trend from :meth:`to_dict` output (``None`` stands for NaN).

        Raises
        ------
        DataError
            If a field is missing or malformed.
        """
        def num(v: Any) -> float:
            return math.nan if v is None else float(v)

        try:
            cov = d["covariance"]
            return cls(
                intercept=num(d["intercept"]), slope=num(d["slope"]),
                slope_low=num(d["slope_low"]), slope_high=num(d["slope_high"]),
                tau=num(d["tau"]), log_n_ref=float(d["log_n_ref"]),
                covariance=((num(cov[0][0]), num(cov[0][1])), (num(cov[1][0]), num(cov[1][1]))),
                n_points=int(d["n_points"]), n_sizes=int(d["n_sizes"]), dof=int(d["dof"]),
                weighted=bool(d["weighted"]),
                size_range=(float(d["size_range"][0]), float(d["size_range"][1])),
                coverage=float(d["coverage"]),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise DataError(
                f"malformed size trend ({type(exc).__name__}: {exc}); write it again with this "
                "version of scalelab"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (non-finite numbers become ``None``)."""
        return {
            "intercept": _jsonable(self.intercept),
            "slope": _jsonable(self.slope),
            "slope_low": _jsonable(self.slope_low),
            "slope_high": _jsonable(self.slope_high),
            "tau": _jsonable(self.tau),
            "log_n_ref": self.log_n_ref,
            "covariance": [[_jsonable(v) for v in row] for row in self.covariance],
            "n_points": self.n_points,
            "n_sizes": self.n_sizes,
            "dof": self.dof,
            "weighted": self.weighted,
            "size_range": list(self.size_range),
            "coverage": self.coverage,
        }


def fit_size_trend(
    sizes: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    se: Sequence[float] | np.ndarray | None = None,
    *,
    coverage: float = 0.95,
    what: str = "the effect",
) -> SizeTrend:
    """Fit ``values = a + b (log N - log N_ref)``, weighted by measurement errors plus scatter.

    Parameters
    ----------
    sizes : array_like
        Model sizes ``N`` (> 0). Several values may share a size (seeds, tasks); they are
        combined into one point per size first (see :func:`_per_size`), so the degrees of
        freedom are ``distinct sizes - 2``.
    values : array_like
        The quantity to fit, already on its fitting scale (e.g. ``log`` speedup).
    se : array_like, optional
        Standard error of each value (> 0). Without it the fit is ordinary least squares.
    coverage : float
        Coverage of the slope interval and the default prediction coverage.
    what : str
        What the values are, for error messages.

    Returns
    -------
    SizeTrend

    Raises
    ------
    DataError
        For fewer than 3 distinct sizes, non-positive sizes, non-finite values or
        non-positive standard errors.

    Examples
    --------
    >>> t = fit_size_trend([1e7, 1e8, 1e9, 1e10], [1.0, 0.8, 0.6, 0.4])
    >>> round(t.slope * math.log(10), 6), round(t.tau, 6)
    (-0.2, 0.0)
    """
    _check_coverage(coverage)
    n_arr = np.asarray(sizes, dtype=np.float64).ravel()
    y = np.asarray(values, dtype=np.float64).ravel()
    if n_arr.shape != y.shape:
        raise DataError(
            f"{n_arr.size} sizes for {y.size} values of {what}; give one size per value"
        )
    if not np.all(np.isfinite(n_arr)) or np.any(n_arr <= 0):
        raise DataError(f"model sizes must be positive numbers, got {n_arr.tolist()}")
    if not np.all(np.isfinite(y)):
        raise DataError(f"{what} must be finite numbers, got {y.tolist()}")
    distinct = np.unique(n_arr)
    if distinct.size < MIN_SIZES:
        raise DataError(
            f"{what} is measured at {distinct.size} distinct model size(s) "
            f"({', '.join(f'{v:.3g}' for v in distinct)}); a trend against N needs at least "
            f"{MIN_SIZES}: add runs at more sizes"
        )
    s2 = None
    if se is not None:
        s = np.asarray(se, dtype=np.float64).ravel()
        if s.shape != y.shape:
            raise DataError(f"{s.size} standard errors for {y.size} values of {what}")
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise DataError(
                f"standard errors of {what} must be positive finite numbers, got {s.tolist()}; "
                "an interval of zero width carries no weight information: drop the interval"
            )
        s2 = s**2
    sizes_u, y_u, s2_u = _per_size(n_arr, y, s2)
    log_n = np.log(sizes_u)
    ref = float(np.mean(log_n))
    X = np.stack([np.ones_like(log_n), log_n - ref], axis=1)
    dof = y_u.size - 2
    if s2_u is None:
        beta, cov_unit, rss = _wls(X, y_u, np.ones_like(y_u))
        tau2 = rss / dof
        cov = cov_unit * tau2
    else:
        tau2 = _paule_mandel(X, y_u, s2_u, dof)
        beta, cov, q = _wls(X, y_u, 1.0 / (s2_u + tau2))
        if tau2 == 0.0:  # modified Hartung-Knapp: scale by max(1, Q / dof) (1 when tau^2 > 0)
            cov = cov * max(1.0, q / dof)
    from scipy import stats

    half = float(stats.t.ppf(0.5 + coverage / 2, dof)) * math.sqrt(max(cov[1, 1], 0.0))
    return SizeTrend(
        intercept=float(beta[0]),
        slope=float(beta[1]),
        slope_low=float(beta[1] - half),
        slope_high=float(beta[1] + half),
        tau=math.sqrt(max(tau2, 0.0)),
        log_n_ref=ref,
        covariance=((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
        n_points=int(y.size),
        n_sizes=int(sizes_u.size),
        dof=int(dof),
        weighted=s2 is not None,
        size_range=(float(distinct[0]), float(distinct[-1])),
        coverage=float(coverage),
    )


def _per_size(
    sizes: np.ndarray, y: np.ndarray, s2: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One point per distinct size: the (inverse-variance weighted) mean of its measurements.

    Measurements at one size share that size's deviation from the line, so they are not
    independent points of the trend. With standard errors, a size's variance is that of its
    weighted mean, scaled up by the replicates' own scatter when it exceeds their errors
    (Birge ratio ``chi^2 / (k - 1)``, when above 1).
    """
    distinct, index = np.unique(sizes, return_inverse=True)
    if s2 is None:
        return distinct, np.bincount(index, weights=y) / np.bincount(index), None
    w = 1.0 / s2
    sum_w = np.bincount(index, weights=w)
    mean = np.bincount(index, weights=w * y) / sum_w
    var = 1.0 / sum_w
    count = np.bincount(index)
    chi2 = np.bincount(index, weights=w * (y - mean[index]) ** 2)
    birge = np.where(count > 1, chi2 / np.maximum(count - 1, 1), 1.0)
    return distinct, mean, var * np.maximum(birge, 1.0)


def _wls(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted least squares: coefficients, ``(X' W X)^-1`` and the weighted RSS."""
    xtwx = X.T @ (X * w[:, None])
    cov = np.linalg.inv(xtwx)
    beta = cov @ (X.T @ (w * y))
    r = y - X @ beta
    return beta, cov, float(np.sum(w * r * r))


def _paule_mandel(X: np.ndarray, y: np.ndarray, s2: np.ndarray, dof: int) -> float:
    """The ``tau^2 >= 0`` at which the weighted RSS equals its degrees of freedom."""
    from scipy import optimize

    def excess(tau2: float) -> float:
        return _wls(X, y, 1.0 / (s2 + tau2))[2] - dof

    if excess(0.0) <= 0:
        return 0.0
    hi = max(float(np.var(y)), float(np.max(s2)), 1e-12)
    while excess(hi) > 0:  # Q(tau2) falls to 0 as tau2 grows, so this ends
        hi *= 4.0
    return float(optimize.brentq(excess, 0.0, hi, xtol=1e-14, rtol=1e-12))


# ------------------------------------------------------------------------------ the verdict
@dataclass(frozen=True)
class Persistence:
    """Whether an effect is predicted to persist at a target model size.

    Attributes
    ----------
    label : str
        What the effect is (the column name from a table).
    kind : str
        ``ratio`` (fitted as ``log effect``) or ``difference``.
    threshold : float
        The effect size that counts as "still there" (default: the neutral 1 or 0).
    direction : str
        ``above`` or ``below``: the side of the threshold the measured effects lie on
        (weighted by the fit's weights).
    target_n : float
    predicted, low, high : float
        The effect predicted at ``target_n`` and its prediction interval (effect units).
    verdict : str
        ``persists``, ``vanishes`` or ``undetermined`` (see the module docstring).
    trend : SizeTrend
        The fitted line (``y`` units: log effect for ratios).
    change_per_decade : float
        How the fitted effect changes per 10x in size: a factor for ratios, an increment
        for differences.
    threshold_n : float or None
        Size at which the fitted line reaches the threshold, when it moves toward it as N
        grows (a point estimate of the line, without interval); ``None`` otherwise.
    extrapolation : float
        ``target_n`` over the largest measured size.
    sizes, effects : tuple of float
        The measurements.
    lower, upper : tuple of float or None
        Their intervals, when given.
    interval_coverage : float or None
        Coverage of those intervals.
    coverage : float
        Coverage of the prediction interval.
    notes : tuple of str
    """

    label: str
    kind: str
    threshold: float
    direction: str
    target_n: float
    predicted: float
    low: float
    high: float
    verdict: str
    trend: SizeTrend
    change_per_decade: float
    threshold_n: float | None
    extrapolation: float
    sizes: tuple[float, ...]
    effects: tuple[float, ...]
    lower: tuple[float, ...] | None
    upper: tuple[float, ...] | None
    interval_coverage: float | None
    coverage: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (non-finite numbers become ``None``)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def persistence(
    sizes: Sequence[float] | np.ndarray,
    effects: Sequence[float] | np.ndarray,
    *,
    target_n: float,
    lower: Sequence[float] | np.ndarray | None = None,
    upper: Sequence[float] | np.ndarray | None = None,
    interval_coverage: float = 0.95,
    kind: str = "ratio",
    threshold: float | None = None,
    coverage: float = 0.95,
    label: str = "effect",
) -> Persistence:
    """Fit an effect against model size and say whether it persists at ``target_n``.

    Parameters
    ----------
    sizes : array_like
        Model size of each measurement (> 0); at least 3 distinct sizes.
    effects : array_like
        The effect at each (a speedup > 0 for ``kind="ratio"``).
    target_n : float
        The size to predict at.
    lower, upper : array_like, optional
        An interval for each effect (both or neither); they weight the fit.
    interval_coverage : float
        Coverage of those intervals (0.95 for 95% intervals).
    kind : {"ratio", "difference"}
        Ratios are fitted as ``log effect`` (neutral value 1), differences as they are
        (neutral value 0).
    threshold : float, optional
        The effect that still counts (default: the neutral value). ``threshold=1.1`` asks
        whether a speedup of at least 10% remains.
    coverage : float
        Coverage of the prediction interval.
    label : str
        Name of the effect in messages and results.

    Returns
    -------
    Persistence

    Raises
    ------
    DataError
        For fewer than 3 sizes, non-positive ratios, intervals that do not contain their
        effect, only one of ``lower`` / ``upper``, or a non-positive target size.

    Examples
    --------
    >>> p = persistence([1e7, 1e8, 1e9], [2.0, 1.6, 1.28], target_n=1e12)
    >>> p.verdict, round(p.predicted, 3), round(p.change_per_decade, 3)
    ('vanishes', 0.655, 0.8)
    """
    if kind not in KINDS:
        raise DataError(f"kind must be 'ratio' or 'difference', got {kind!r}")
    _check_coverage(coverage)
    _check_coverage(interval_coverage, "interval coverage")
    if not (isinstance(target_n, numbers.Real) and math.isfinite(target_n) and target_n > 0):
        raise DataError(f"target size must be a positive number of parameters, got {target_n!r}")
    n_arr = np.asarray(sizes, dtype=np.float64).ravel()
    e = np.asarray(effects, dtype=np.float64).ravel()
    if n_arr.shape != e.shape:
        raise DataError(f"{n_arr.size} sizes for {e.size} effects; give one size per effect")
    if e.size == 0:
        raise DataError(f"no measurements of {label}: the table (after --where) has no rows")
    neutral = 1.0 if kind == "ratio" else 0.0
    thr = neutral if threshold is None else float(threshold)
    if not math.isfinite(thr) or (kind == "ratio" and thr <= 0):
        raise DataError(f"threshold must be a finite number (> 0 for ratios), got {threshold!r}")
    y = _to_y(e, kind, label)
    se = None
    lo_t = hi_t = None
    if (lower is None) != (upper is None):
        raise DataError(
            f"give both the lower and the upper end of the intervals of {label}, or neither"
        )
    if lower is not None and upper is not None:
        lo = np.asarray(lower, dtype=np.float64).ravel()
        hi = np.asarray(upper, dtype=np.float64).ravel()
        if lo.shape != e.shape or hi.shape != e.shape:
            raise DataError(f"give one interval per effect: {e.size} effects, {lo.size} intervals")
        bad = np.flatnonzero(~((lo <= e) & (e <= hi)))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"the interval of {label} at row {i} ([{lo[i]:g}, {hi[i]:g}]) does not contain "
                f"its value {e[i]:g}; check the lower and upper columns"
            )
        from scipy import stats

        z = float(stats.norm.ppf(0.5 + interval_coverage / 2))
        se = (
            _to_y(hi, kind, f"upper ends of {label}") - _to_y(lo, kind, f"lower ends of {label}")
        ) / (2 * z)
        zero = np.flatnonzero(se <= 0)
        if zero.size:
            i = int(zero[0])
            raise DataError(
                f"the interval of {label} at row {i} has zero width ([{lo[i]:g}, {hi[i]:g}]); "
                "give real intervals or drop the interval columns (an unweighted fit)"
            )
        lo_t, hi_t = tuple(lo.tolist()), tuple(hi.tolist())
    trend = fit_size_trend(n_arr, y, se, coverage=coverage, what=label)
    mean, low, high = (float(v[0]) for v in trend.predict(target_n))
    y_thr = math.log(thr) if kind == "ratio" else thr
    w = 1.0 / (se**2 + trend.tau**2) if se is not None else np.ones_like(y)
    if not np.all(np.isfinite(w)):  # a perfect unweighted line: tau 0
        w = np.ones_like(y)
    centre = float(np.sum(w * y) / np.sum(w))
    notes = []
    direction = "above" if centre >= y_thr else "below"
    if centre == y_thr:
        notes.append(f"the measured {label} averages exactly the threshold; treated as above it")
    if direction == "above":
        verdict = "persists" if low > y_thr else "vanishes" if high < y_thr else "undetermined"
    else:
        verdict = "persists" if high < y_thr else "vanishes" if low > y_thr else "undetermined"
    threshold_n = None
    toward = trend.slope < 0 if direction == "above" else trend.slope > 0
    if toward and trend.slope != 0:
        log_n_star = trend.log_n_ref + (y_thr - trend.intercept) / trend.slope
        threshold_n = math.exp(log_n_star) if log_n_star < 700 else None
    extrapolation = float(target_n) / trend.size_range[1]
    if extrapolation > 1:
        notes.append(
            f"extrapolates {extrapolation:.3g}x beyond the largest measured size "
            f"({trend.size_range[1]:.3g}); the interval assumes the trend stays a straight line "
            "in log N"
        )
    if trend.n_sizes < 5:
        notes.append(
            f"{trend.n_sizes} sizes: the interval uses Student's t with {trend.dof} degrees of "
            "freedom and is wide; more sizes narrow it"
        )
    decade = trend.slope * math.log(10.0)
    back = math.exp if kind == "ratio" else (lambda v: v)
    return Persistence(
        label=label,
        kind=kind,
        threshold=thr,
        direction=direction,
        target_n=float(target_n),
        predicted=back(mean),
        low=back(low),
        high=back(high),
        verdict=verdict,
        trend=trend,
        change_per_decade=math.exp(decade) if kind == "ratio" else decade,
        threshold_n=threshold_n,
        extrapolation=extrapolation,
        sizes=tuple(n_arr.tolist()),
        effects=tuple(e.tolist()),
        lower=lo_t,
        upper=hi_t,
        interval_coverage=float(interval_coverage) if lo_t is not None else None,
        coverage=float(coverage),
        notes=tuple(notes),
    )


def _to_y(values: np.ndarray, kind: str, what: str) -> np.ndarray:
    """Effects on the fitting scale: ``log`` for ratios (which must be positive)."""
    v = np.asarray(values, dtype=np.float64)
    if kind == "difference":
        return v
    bad = np.flatnonzero(~(v > 0))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{what} must be positive ratios (a speedup of 1 means no effect), got {v[i]:g} at "
            f"row {i}; use kind='difference' (--kind difference) for effects that can be zero "
            "or negative"
        )
    return np.log(v)


def persistence_from_table(
    source: Any,
    *,
    size_col: str,
    effect_col: str,
    target_n: float,
    lower_col: str | None = None,
    upper_col: str | None = None,
    where: str | None = None,
    interval_coverage: float = 0.95,
    kind: str = "ratio",
    threshold: float | None = None,
    coverage: float = 0.95,
) -> Persistence:
    """:func:`persistence` on the columns of a tidy table (one row per measured effect).

    Parameters
    ----------
    source : path, dataset name, Table, DataFrame or mapping of columns
        Anything :func:`scalelab.store.read_table` reads.
    size_col, effect_col : str
        Model size and effect columns.
    target_n : float
    lower_col, upper_col : str, optional
        Interval columns (both or neither).
    where : str, optional
        Row filter, e.g. ``"target == 'arith'"``.
    interval_coverage, kind, threshold, coverage
        As in :func:`persistence`.

    Returns
    -------
    Persistence

    Raises
    ------
    DataError
        For unknown columns (the message lists the table's columns), non-numeric or missing
        values, and everything :func:`persistence` rejects.
    """
    from scalelab.store import read_table

    if (lower_col is None) != (upper_col is None):
        raise DataError("give both --lower-col and --upper-col, or neither")
    table = read_table(source)
    if where:
        table = table.where(where)
    for col in (size_col, effect_col, lower_col, upper_col):
        if col is not None:
            table.column(col)  # unknown column -> DataError listing the columns
    sizes = table.numeric(size_col, positive=True)
    effects = table.numeric(effect_col)
    lower = table.numeric(lower_col) if lower_col else None
    upper = table.numeric(upper_col) if upper_col else None
    return persistence(
        sizes,
        effects,
        target_n=target_n,
        lower=lower,
        upper=upper,
        interval_coverage=interval_coverage,
        kind=kind,
        threshold=threshold,
        coverage=coverage,
        label=effect_col,
    )
