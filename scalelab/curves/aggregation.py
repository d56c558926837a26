r"""How smooth curves and sharp ones relate: two aggregation views of learning curves.

**Quantization model** (Michaud et al. 2023, "The Quantization Model of Neural Scaling",
arXiv:2303.13506). The loss is a frequency-weighted sum over discrete skills ("quanta"),
each learned in a phase change:

.. math:: L(t) = \sum_k p_k\, \ell_k(t), \qquad p_k = k^{-(\alpha+1)} / \textstyle\sum_j j^{-(\alpha+1)},

with :math:`\ell_k` falling from ``high`` (skill not learned) to ``low`` (learned) around
the skill's transition step :math:`\tau_k`. If a skill is learned once it has been seen a
fixed number of times, :math:`\tau_k \propto 1/p_k \propto k^{\alpha+1}`, so by step
:math:`t` the first :math:`n(t) \propto t^{1/(\alpha+1)}` skills are learned and the rest
contribute :math:`\sum_{k>n} p_k \propto n^{-\alpha}`. Hence (their Sec. 3, scaling in data)

.. math:: L(t) - L_\infty \propto t^{-\alpha/(\alpha+1)},

the data (or steps, in one epoch) exponent :math:`\alpha_D = \alpha/(\alpha+1)`; inversely
:math:`\alpha = \alpha_D/(1-\alpha_D)`. (Their parameter exponent is :math:`\alpha_N =
\alpha`: a model with capacity for :math:`n \propto N` quanta.) With a finite number of
skills :math:`K` the tail sum is :math:`(n^{-\alpha} - K^{-\alpha})/\alpha` up to
normalisation: the same power law with a slightly lower floor, which the saturating fit's
free floor absorbs.

**Compounding** (e.g. Schaeffer et al. 2023, "Are Emergent Abilities of Large Language
Models a Mirage?", arXiv:2304.15004). A task that needs ``k`` independent steps right has
accuracy :math:`p^k` for per-step accuracy :math:`p`. For a logistic per-step curve in
:math:`\log x` of width :math:`w` the task curve's 10-90% width is
:math:`w\,[\mathrm{logit}(0.9^{1/k}) - \mathrm{logit}(0.1^{1/k})]`: :math:`4.39w` at
:math:`k=1`, shrinking to :math:`3.08w` as :math:`k\to\infty` (a factor 0.70), while the
curve moves later by about :math:`w \ln k` and stays near zero until the per-step accuracy
is already high (:math:`0.1^{1/k}`, 0.79 for :math:`k=10`). Per-step accuracy
:math:`e^{-c x^{-\gamma}}` (a power-law per-step loss) is *not* sharpened in :math:`\log x`
at all: :math:`p^k = e^{-kc x^{-\gamma}}` is the same curve moved by :math:`\ln(k)/\gamma`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from scalelab.errors import DataError

__all__ = [
    "AggregateFit",
    "CompoundingRow",
    "TransitionWidth",
    "compounding_table",
    "fit_aggregate_power_law",
    "logistic",
    "logistic_task_width",
    "per_step_accuracy",
    "quantization_exponent",
    "quantization_loss",
    "skill_loss",
    "task_accuracy",
    "transition_width",
    "zipf_exponent_from",
    "zipf_frequencies",
]


# ----------------------------------------------------------------------------- quantization model
def zipf_frequencies(n_skills: int, alpha: float) -> np.ndarray:
    """Skill frequencies ``p_k ∝ k^-(alpha+1)``, ``k = 1..n_skills``, summing to 1.

    Parameters
    ----------
    n_skills : int
        Number of skills (at least 1).
    alpha : float
        Zipf exponent of the quantization model (> 0); the frequency exponent is ``alpha + 1``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_skills,)``, decreasing, summing to 1.

    Examples
    --------
    >>> p = zipf_frequencies(3, 1.0)
    >>> [round(float(v), 4) for v in p]
    [0.7347, 0.1837, 0.0816]
    """
    if int(n_skills) != n_skills or n_skills < 1:
        raise DataError(f"n_skills must be a positive integer, got {n_skills!r}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise DataError(f"the Zipf exponent alpha must be > 0, got {alpha!r}")
    k = np.arange(1, int(n_skills) + 1, dtype=float)
    w = k ** -(alpha + 1.0)
    return w / w.sum()


def quantization_exponent(alpha: float) -> float:
    """Loss-vs-data (steps) exponent predicted by the quantization model: ``alpha / (alpha + 1)``.

    Parameters
    ----------
    alpha : float
        Zipf exponent (skill frequencies ``∝ k^-(alpha+1)``), > 0.

    Returns
    -------
    float

    Examples
    --------
    >>> quantization_exponent(0.5)
    0.3333333333333333
    """
    if not math.isfinite(alpha) or alpha <= 0:
        raise DataError(f"the Zipf exponent alpha must be > 0, got {alpha!r}")
    return alpha / (alpha + 1.0)


def zipf_exponent_from(exponent: float) -> float:
    """Invert :func:`quantization_exponent`: the Zipf ``alpha`` implied by a data exponent.

    Parameters
    ----------
    exponent : float
        Fitted exponent of ``L - L_inf ∝ t^-exponent``; must be in (0, 1).

    Returns
    -------
    float
        ``exponent / (1 - exponent)``.

    Examples
    --------
    >>> round(zipf_exponent_from(1 / 3), 12)
    0.5
    """
    if not 0 < exponent < 1:
        raise DataError(
            f"a data exponent of {exponent!r} implies no Zipf exponent; the quantization model "
            "gives exponents in (0, 1)"
        )
    return exponent / (1.0 - exponent)


def logistic(x: ArrayLike, midpoint: ArrayLike, width: ArrayLike) -> np.ndarray:
    """Logistic curve in ``log x``: ``1 / (1 + exp(-(ln x - ln midpoint) / width))``.

    Parameters
    ----------
    x, midpoint, width : array_like
        Positive; broadcast together.

    Returns
    -------
    numpy.ndarray
        Values in (0, 1), 1/2 at ``x = midpoint``.
    """
    x = np.asarray(x, dtype=float)
    z = (np.log(x) - np.log(np.asarray(midpoint, dtype=float))) / np.asarray(width, dtype=float)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow


def skill_loss(
    steps: ArrayLike,
    transitions: ArrayLike,
    width: ArrayLike,
    *,
    high: ArrayLike,
    low: ArrayLike,
) -> np.ndarray:
    """Per-skill loss: from ``high`` to ``low`` in a logistic phase change in log steps.

    Parameters
    ----------
    steps : array_like, shape (T,)
        Positive steps (or tokens).
    transitions : array_like, shape (K,)
        Each skill's transition step (the loss is halfway there).
    width : float or array_like, shape (K,)
        Transition width in natural-log steps (the logistic's scale).
    high, low : float or array_like, shape (K,)
        Loss before and after the skill is learned.

    Returns
    -------
    numpy.ndarray, shape (K, T)
    """
    t = np.asarray(steps, dtype=float)[None, :]
    tau = np.asarray(transitions, dtype=float)[:, None]
    w = np.broadcast_to(np.asarray(width, dtype=float), tau.shape[:1])[:, None]
    hi = np.broadcast_to(np.asarray(high, dtype=float), tau.shape[:1])[:, None]
    lo = np.broadcast_to(np.asarray(low, dtype=float), tau.shape[:1])[:, None]
    return hi - (hi - lo) * logistic(t, tau, w)


def quantization_loss(
    steps: ArrayLike,
    frequencies: ArrayLike,
    transitions: ArrayLike,
    *,
    width: ArrayLike = 0.2,
    high: ArrayLike = 2.0,
    low: ArrayLike = 0.0,
) -> np.ndarray:
    """Aggregate loss of the quantization model, ``L(t) = sum_k p_k * loss_k(t)``.

    Parameters
    ----------
    steps : array_like, shape (T,)
        Positive steps (or tokens) at which to evaluate.
    frequencies : array_like, shape (K,)
        Skill frequencies ``p_k`` (e.g. :func:`zipf_frequencies`); need not sum to 1.
    transitions : array_like, shape (K,)
        Each skill's transition step; in the quantization model ``∝ 1 / p_k``.
    width, high, low : float or array_like of shape (K,)
        As in :func:`skill_loss`.

    Returns
    -------
    numpy.ndarray, shape (T,)

    Examples
    --------
    >>> p = zipf_frequencies(1000, 0.5)
    >>> steps = np.array([1e3, 1e5])
    >>> loss = quantization_loss(steps, p, 10.0 / p, high=2.0, low=0.1)
    >>> bool(loss[0] > loss[1] > 0.1)
    True
    """
    p = np.asarray(frequencies, dtype=float)
    tau = np.asarray(transitions, dtype=float)
    if p.ndim != 1 or tau.shape != p.shape:
        raise DataError(
            f"frequencies and transitions must be 1-D of equal length, got {p.shape} and "
            f"{tau.shape}"
        )
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise DataError("skill frequencies must be finite and >= 0")
    if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
        raise DataError("skill transition steps must be finite and > 0")
    t = np.asarray(steps, dtype=float)
    if t.ndim != 1 or np.any(~np.isfinite(t)) or np.any(t <= 0):
        raise DataError("steps must be a 1-D array of finite values > 0")
    return p @ skill_loss(t, tau, width, high=high, low=low)


@dataclass(frozen=True)
class AggregateFit:
    """A saturating power law fitted to an aggregate loss curve, read as a quantization model.

    Attributes
    ----------
    exponent, exponent_ci : float, tuple of float
        Fitted ``alpha_D`` of ``L = E + A t^-alpha_D`` and its interval.
    zipf_alpha, zipf_alpha_ci : float, tuple of float
        The implied Zipf exponent ``alpha_D / (1 - alpha_D)`` (NaN where undefined) and its
        interval (the exponent's interval mapped through the same monotone function).
    floor : float
        Fitted ``E`` (the loss with every skill learned, up to a finite-skill offset).
    fit : FitResult
        The engine's full result (law ``power_law``, input ``x``).
    """

    exponent: float
    exponent_ci: tuple[float, float]
    zipf_alpha: float
    zipf_alpha_ci: tuple[float, float]
    floor: float
    fit: Any

    def to_dict(self) -> dict[str, Any]:
        """Return the summary numbers as a dict (the full fit via ``self.fit.to_dict()``)."""
        return {
            "exponent": self.exponent,
            "exponent_ci": list(self.exponent_ci),
            "zipf_alpha": self.zipf_alpha,
            "zipf_alpha_ci": list(self.zipf_alpha_ci),
            "floor": self.floor,
        }


def _implied_alpha(exponent: float) -> float:
    return exponent / (1.0 - exponent) if 0 < exponent < 1 else math.nan


def fit_aggregate_power_law(
    steps: ArrayLike,
    loss: ArrayLike,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    fixed: Mapping[str, float] | None = None,
    loss_fn: str = "mse",
) -> AggregateFit:
    """Fit ``L = E + A t^-alpha_D`` with the engine and read off the implied Zipf exponent.

    Parameters
    ----------
    steps, loss : array_like
        The aggregate curve (positive values), e.g. from :func:`quantization_loss`.
    bootstrap : int
        Bootstrap resamples for the intervals (0: Hessian intervals).
    seed : int
        Seed of the engine's random starts and bootstrap.
    fixed : mapping, optional
        Fixed parameters of the ``power_law`` law, e.g. ``{"E": floor}``.
    loss_fn : str
        The engine's objective (``"mse"`` on log residuals by default: the curve is smooth,
        so Huber's robustness is not needed).

    Returns
    -------
    AggregateFit
    """
    from scalelab.fit import fit

    t = np.asarray(steps, dtype=float)
    y = np.asarray(loss, dtype=float)
    res = fit(
        "power_law",
        {"x": t, "loss": y},
        x={"x": "x"},
        y="loss",
        loss=loss_fn,
        bootstrap=bootstrap,
        seed=seed,
        fixed=dict(fixed or {}),
    )
    est = res.params["alpha"]
    lo, hi = float(est.ci_low), float(est.ci_high)
    return AggregateFit(
        exponent=float(est.value),
        exponent_ci=(lo, hi),
        zipf_alpha=_implied_alpha(float(est.value)),
        zipf_alpha_ci=(_implied_alpha(lo), _implied_alpha(hi)),
        floor=float(res.params["E"].value),
        fit=res,
    )


# ----------------------------------------------------------------------------- compounding
def task_accuracy(per_step: ArrayLike, k: float) -> np.ndarray:
    """Accuracy of a task that needs ``k`` independent steps right: ``per_step ** k``.

    Examples
    --------
    >>> float(task_accuracy(0.9, 10))  # doctest: +ELLIPSIS
    0.3486...
    """
    if not k >= 1:
        raise DataError(f"the number of steps k must be >= 1, got {k!r}")
    p = np.asarray(per_step, dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise DataError("per-step accuracies must lie in [0, 1]")
    return p**k


def per_step_accuracy(task: ArrayLike, k: float) -> np.ndarray:
    """Per-step accuracy implied by a ``k``-step task's accuracy: ``task ** (1 / k)``.

    Examples
    --------
    >>> round(float(per_step_accuracy(task_accuracy(0.9, 10), 10)), 12)
    0.9
    """
    if not k >= 1:
        raise DataError(f"the number of steps k must be >= 1, got {k!r}")
    a = np.asarray(task, dtype=float)
    if np.any((a < 0) | (a > 1)):
        raise DataError("task accuracies must lie in [0, 1]")
    return a ** (1.0 / k)


@dataclass(frozen=True)
class TransitionWidth:
    """Where a rising curve crosses ``low`` and ``high`` fractions of its range, in log x.

    Attributes
    ----------
    start, middle, end : float
        ``x`` where the curve first reaches the ``low``, halfway and ``high`` levels
        (interpolated linearly in ``ln x``).
    width : float
        ``ln(end) - ln(start)``, in natural-log units (divide by ``ln 10`` for decades).
    """

    start: float
    middle: float
    end: float
    width: float

    @property
    def decades(self) -> float:
        """The width in decades of ``x``."""
        return self.width / math.log(10.0)


def _first_crossing(log_x: np.ndarray, y: np.ndarray, level: float) -> float:
    above = np.flatnonzero(y >= level)
    if above.size == 0:
        raise DataError(f"the curve never reaches {level:g}")
    i = int(above[0])
    if i == 0:
        if y[0] > level:
            raise DataError(
                f"the curve starts above the level {level:g}; extend x to where it is lower"
            )
        return float(log_x[0])
    frac = (level - y[i - 1]) / (y[i] - y[i - 1])
    return float(log_x[i - 1] + frac * (log_x[i] - log_x[i - 1]))


def transition_width(
    x: ArrayLike,
    y: ArrayLike,
    *,
    low: float = 0.1,
    high: float = 0.9,
    floor: float | None = None,
    ceiling: float | None = None,
) -> TransitionWidth:
    """Apparent width of a rising transition in ``log x`` (10-90% by default).

    Levels are fractions of the way from ``floor`` to ``ceiling`` (default: the curve's own
    minimum and maximum, i.e. what a plot of this range shows); each is placed at the first
    crossing, interpolated linearly in ``ln x``.

    Parameters
    ----------
    x : array_like
        Positive, strictly increasing.
    y : array_like
        The curve (e.g. accuracy), rising overall.
    low, high : float
        Fractions of the range, ``0 <= low < high <= 1``.
    floor, ceiling : float, optional
        The range's ends.

    Returns
    -------
    TransitionWidth

    Examples
    --------
    >>> x = np.logspace(-4, 4, 2001)
    >>> round(transition_width(x, logistic(x, 1.0, 1.0)).width, 2)  # 2 ln 9 = 4.394
    4.39
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size < 2:
        raise DataError("x and y must be 1-D arrays of equal length with at least 2 points")
    if np.any(~np.isfinite(xs)) or np.any(xs <= 0) or np.any(np.diff(xs) <= 0):
        raise DataError("x must be finite, > 0 and strictly increasing")
    if np.any(~np.isfinite(ys)):
        raise DataError("y must be finite")
    if not 0 <= low < high <= 1:
        raise DataError(f"need 0 <= low < high <= 1, got low={low!r}, high={high!r}")
    lo = float(np.min(ys)) if floor is None else float(floor)
    hi = float(np.max(ys)) if ceiling is None else float(ceiling)
    if not hi > lo:
        raise DataError("the curve does not rise (its ceiling is not above its floor)")
    log_x = np.log(xs)
    a = _first_crossing(log_x, ys, lo + low * (hi - lo))
    m = _first_crossing(log_x, ys, lo + 0.5 * (hi - lo))
    b = _first_crossing(log_x, ys, lo + high * (hi - lo))
    return TransitionWidth(start=math.exp(a), middle=math.exp(m), end=math.exp(b), width=b - a)


def logistic_task_width(
    k: float, width: float = 1.0, *, low: float = 0.1, high: float = 0.9
) -> float:
    """Exact ``low``-``high`` width in ``ln x`` of ``logistic(x, x0, width) ** k``.

    ``width * (logit(high^(1/k)) - logit(low^(1/k)))``; for ``k = 1`` and 10-90% this is
    ``2 ln 9 * width``, and as ``k -> inf`` it tends to ``ln(ln(1/low) / ln(1/high)) * width``.

    Examples
    --------
    >>> round(logistic_task_width(10) / logistic_task_width(1), 3)
    0.727
    """
    if not k >= 1:
        raise DataError(f"the number of steps k must be >= 1, got {k!r}")
    if not 0 < low < high < 1:
        raise DataError(f"need 0 < low < high < 1, got low={low!r}, high={high!r}")

    def logit(p: float) -> float:
        return math.log(p / (1.0 - p))

    return width * (logit(high ** (1.0 / k)) - logit(low ** (1.0 / k)))


@dataclass(frozen=True)
class CompoundingRow:
    """One ``k`` of :func:`compounding_table`.

    Attributes
    ----------
    k : float
        Steps per task.
    width : float
        The task curve's apparent transition width in ``ln x``.
    width_ratio : float
        ``width`` over the per-step curve's width (below 1: sharper).
    middle : float
        ``x`` at the task curve's halfway level.
    per_step_at_start : float
        Per-step accuracy where the task curve reaches its ``low`` level: how good each step
        already is when the task starts to "emerge".
    """

    k: float
    width: float
    width_ratio: float
    middle: float
    per_step_at_start: float


def compounding_table(
    x: ArrayLike,
    per_step: ArrayLike,
    ks: Iterable[float],
    *,
    low: float = 0.1,
    high: float = 0.9,
) -> tuple[CompoundingRow, ...]:
    """Apparent transition widths of ``per_step ** k`` against the per-step curve's.

    Widths are measured by :func:`transition_width` on the range ``[0, 1]`` (accuracy), so
    every curve is judged on the same scale.

    Parameters
    ----------
    x : array_like
        Positive, increasing scale (steps, tokens, parameters, compute).
    per_step : array_like
        Per-step accuracy at each ``x``, rising within [0, 1].
    ks : iterable of float
        Task lengths to tabulate.
    low, high : float
        Fractions of [0, 1] defining the width.

    Returns
    -------
    tuple of CompoundingRow

    Examples
    --------
    >>> x = np.logspace(-6, 8, 4001)
    >>> rows = compounding_table(x, logistic(x, 1.0, 1.0), [1, 10])
    >>> [round(r.width_ratio, 2) for r in rows]
    [1.0, 0.73]
    """
    xs = np.asarray(x, dtype=float)
    p = np.asarray(per_step, dtype=float)
    base = transition_width(xs, p, low=low, high=high, floor=0.0, ceiling=1.0)
    rows = []
    log_x = np.log(xs)
    for k in ks:
        acc = task_accuracy(p, k)
        tw = transition_width(xs, acc, low=low, high=high, floor=0.0, ceiling=1.0)
        at_start = float(np.interp(math.log(tw.start), log_x, p))
        rows.append(
            CompoundingRow(
                k=float(k),
                width=tw.width,
                width_ratio=tw.width / base.width,
                middle=tw.middle,
                per_step_at_start=at_start,
            )
        )
    return tuple(rows)
