"""When a skill is acquired: the first step at which a curve reaches a level and stays there.

Definitions (also in docs/curves.md):

* **Level.** An absolute ``threshold`` (default 0.9), or a ``fraction`` of the way from the
  skill's chance level to the curve's *final* value (its value at the last evaluated step):
  ``level = chance + fraction * (final - chance)``.
* **Sustain.** The crossing is the first evaluation point at or above the level such that the
  next ``sustain`` points, itself included, are all at or above it (fewer when the curve ends
  sooner: then every remaining point must be). A noisy blip that falls back does not count.
* **Interpolation in log-step.** The crossing step lies between the last point below the level
  and that first sustained point; it is found by linear interpolation of the metric against
  ``log(step + offset)``. ``offset`` (default 1) keeps step 0 usable and changes steps above a
  few hundred by under 1%; pass ``offset=0`` for pure log-step when every step is positive.
  Tokens and FLOPs at the crossing are interpolated linearly in step (exact when the batch
  size is constant).
* **Censoring.** A curve that never reaches the level is ``not_reached``, censored at its last
  step (no step is given); one already at the level at its first point is ``at_start`` (the
  crossing happened at or before that step); a curve with fewer than two points is
  ``insufficient``; in fraction mode a curve whose final value is not above chance has
  ``no_progress``.
* **Interval.** With per-point standard errors (evaluation noise, e.g. lm-eval's ``stderr``)
  and ``bootstrap=B``, the curve is redrawn ``B`` times with Gaussian noise of those standard
  errors (the level too, in fraction mode, since it depends on the final value) and the
  interval is the percentile interval of the redrawn crossing steps. It covers evaluation
  noise only, given the checkpoints; the ``bracket`` (the two evaluated steps around the
  crossing) shows how much rests on interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from scalelab.curves._json import fields_to_json, jsonable
from scalelab.curves.tidy import Curve
from scalelab.errors import DataError

if TYPE_CHECKING:
    from scalelab.curves.transition import Transition

__all__ = [
    "DEFAULT_SUSTAIN",
    "DEFAULT_THRESHOLD",
    "Crossing",
    "CurveAnalysis",
    "Emergence",
    "GrokkingDelay",
    "analyze_curves",
    "emergence",
    "first_crossing",
    "grokking_delay",
]

DEFAULT_THRESHOLD = 0.9
#: evaluation points that must stay at or above the level, the crossing point included
DEFAULT_SUSTAIN = 3


@dataclass(frozen=True)
class Crossing:
    """Where one curve first reaches a level and stays there.

    Attributes
    ----------
    status : str
        ``reached``, ``at_start`` (already there at the first point), ``not_reached`` or
        ``insufficient`` (fewer than two points).
    x : float or None
        The interpolated crossing, in the units of the x values given (steps or tokens).
    index : int or None
        Index of the first point of the sustained run.
    bracket : (float, float) or None
        The evaluated x values around the crossing (the last below, the first sustained).
    last_x : float
        The last evaluated x value: where a ``not_reached`` curve is censored.
    sustained_points : int
        How many points the sustain check covered (fewer than asked near the end).
    """

    status: str
    x: float | None
    index: int | None
    bracket: tuple[float, float] | None
    last_x: float
    sustained_points: int


def first_crossing(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    level: float,
    *,
    sustain: int = 1,
    rising: bool = True,
    offset: float = 1.0,
    log_y: bool = False,
) -> Crossing:
    """Find the first ``x`` at which ``y`` reaches ``level`` and stays there for ``sustain`` points.

    Parameters
    ----------
    x, y : array_like
        Strictly increasing positions (steps or tokens) and the metric at each.
    level : float
        The level to reach.
    sustain : int
        Points, the crossing point included, that must all be at or beyond the level.
    rising : bool
        ``True`` when reaching means ``y >= level`` (accuracy), ``False`` for ``y <= level``
        (loss).
    offset : float
        Interpolate against ``log(x + offset)``.
    log_y : bool
        Interpolate ``log y`` instead of ``y`` (power-law segments, for losses); needs
        ``y > 0`` and ``level > 0``.

    Returns
    -------
    Crossing

    Examples
    --------
    >>> c = first_crossing([0, 9, 99, 999], [0.1, 0.3, 0.7, 0.9], 0.5, sustain=2)
    >>> c.status, round(c.x, 2), c.bracket
    ('reached', 30.62, (9.0, 99.0))
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    u = log_positions(xs, offset)
    if log_y:
        if level <= 0 or np.any(ys <= 0):
            raise DataError("interpolating log values needs positive values and a positive level")
        ys, level = np.log(ys), math.log(level)
    last = float(xs[-1]) if xs.size else math.nan
    if xs.size < 2:
        return Crossing("insufficient", None, None, None, last, 0)
    u_cross, index, found = _crossings(u, ys[None, :], np.array([level]), sustain, rising)
    if not found[0]:
        return Crossing("not_reached", None, None, None, last, 0)
    i = int(index[0])
    kept = min(sustain, xs.size - i)
    if i == 0:
        return Crossing("at_start", float(xs[0]), 0, None, last, kept)
    step = float(np.exp(u_cross[0]) - offset)
    step = min(max(step, float(xs[i - 1])), float(xs[i]))  # guard rounding at the ends
    return Crossing("reached", step, i, (float(xs[i - 1]), float(xs[i])), last, kept)


def log_positions(x: np.ndarray, offset: float) -> np.ndarray:
    """``log(x + offset)``, refusing non-positive arguments with a clear message."""
    if not math.isfinite(offset) or offset < 0:
        raise DataError(f"offset must be a finite number >= 0, got {offset}")
    shifted = x + offset
    if np.any(shifted <= 0):
        raise DataError(
            f"log-step interpolation needs step + offset > 0, but the first step is {x[0]:g} "
            f"with offset {offset:g}; use offset=1 (the default) when steps start at 0"
        )
    return np.log(shifted)


def _crossings(
    u: np.ndarray, y: np.ndarray, level: np.ndarray, sustain: int, rising: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised over rows of ``y`` (B, n) and ``level`` (B,): crossing in ``u`` units.

    Returns the interpolated ``u`` of each row's crossing (``u[0]`` when the first point is
    already there, NaN when never), the index of the first sustained point, and a found mask.
    """
    if sustain < 1:
        raise DataError(f"sustain must be at least 1 evaluation point, got {sustain}")
    n = y.shape[1]
    with np.errstate(invalid="ignore"):
        there = (y >= level[:, None]) if rising else (y <= level[:, None])
    counts = np.concatenate([np.zeros((len(y), 1), dtype=np.int64), np.cumsum(there, 1)], 1)
    starts = np.arange(n)
    need = np.minimum(sustain, n - starts)
    ok = (counts[:, starts + need] - counts[:, starts]) == need
    found = ok.any(axis=1)
    index = np.where(found, ok.argmax(axis=1), 0)
    rows = np.arange(len(y))
    i = np.maximum(index, 1)
    y0, y1 = y[rows, i - 1], y[rows, i]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip((level - y0) / (y1 - y0), 0.0, 1.0)
    u_cross = u[i - 1] + frac * (u[i] - u[i - 1])
    u_cross = np.where(index == 0, u[0], u_cross)
    return np.where(found, u_cross, np.nan), index, found


# ------------------------------------------------------------------------------ emergence
@dataclass(frozen=True)
class Emergence:
    """The emergence (grokking) step of one curve.

    Attributes
    ----------
    run, skill, seed, metric : str
        The curve.
    status : str
        ``reached``, ``at_start``, ``not_reached``, ``insufficient`` or ``no_progress``.
    level : float or None
        The metric level that defines the crossing (``None`` without progress).
    mode : str
        ``threshold`` or ``fraction``.
    threshold, fraction, chance, final_value : float or None
        The settings, and the curve's value at its last step.
    step : float or None
        The interpolated crossing step (``None`` unless reached or at start).
    step_low, step_high : float or None
        Evaluation-noise percentile interval; ``step_high`` is ``None`` when too many redraws
        never reach the level (the upper end lies beyond the last step). Both are ``None``
        when the curve itself does not reach the level.
    bracket : (float, float) or None
        The evaluated steps on either side of the crossing.
    tokens, flops : float or None
        Tokens / FLOPs at the crossing (interpolated linearly in step), when known.
    tokens_ci, flops_ci : (float or None, float or None) or None
        The step interval mapped to tokens / FLOPs.
    last_step : float
        Where a curve that is not reached is censored.
    sustain, sustained_points : int
        Points asked to stay at the level, and points the check covered.
    n_points : int
    interval_method : str
        ``eval-noise-bootstrap`` or ``none``.
    coverage : float
    n_resamples : int
    reached_fraction : float or None
        Share of redrawn curves that reach the level.
    offset : float
        The log-step offset used.
    notes : tuple of str
    """

    run: str
    skill: str
    seed: str
    metric: str
    status: str
    level: float | None
    mode: str
    threshold: float | None
    fraction: float | None
    chance: float | None
    final_value: float | None
    step: float | None
    step_low: float | None
    step_high: float | None
    bracket: tuple[float, float] | None
    tokens: float | None
    flops: float | None
    tokens_ci: tuple[float | None, float | None] | None
    flops_ci: tuple[float | None, float | None] | None
    last_step: float
    sustain: int
    sustained_points: int
    n_points: int
    interval_method: str
    coverage: float
    n_resamples: int
    reached_fraction: float | None
    offset: float
    notes: tuple[str, ...] = ()

    @property
    def reached(self) -> bool:
        """Whether the curve reaches the level (including at its first point)."""
        return self.status in ("reached", "at_start")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (non-finite numbers become ``None``)."""
        return fields_to_json(self)


def emergence(
    curve: Curve,
    *,
    threshold: float | None = None,
    fraction: float | None = None,
    chance: float | None = None,
    sustain: int = DEFAULT_SUSTAIN,
    offset: float = 1.0,
    bootstrap: int = 0,
    coverage: float = 0.95,
    seed: int = 0,
) -> Emergence:
    """The first step at which ``curve`` reaches a level and stays there, with an interval.

    Parameters
    ----------
    curve : Curve
        An accuracy-like curve (higher is better).
    threshold : float, optional
        Absolute level; the default (0.9) when neither ``threshold`` nor ``fraction`` is given.
    fraction : float, optional
        Level as a fraction of the way from ``chance`` to the final value, in (0, 1].
    chance : float, optional
        The chance level; defaults to ``curve.chance``. Required in fraction mode.
    sustain : int
        Evaluation points (crossing point included) that must stay at or above the level.
    offset : float
        Interpolate against ``log(step + offset)``.
    bootstrap : int
        Redraws of the curve from its standard errors for the interval (needs
        ``curve.stderr``; 0 for none).
    coverage : float
        Interval coverage.
    seed : int
        Seed of the redraws.

    Returns
    -------
    Emergence

    Raises
    ------
    DataError
        For conflicting or out-of-range settings, or fraction mode without a chance level.
    """
    emerged, _ = _emergence_with_draws(
        curve,
        threshold=threshold,
        fraction=fraction,
        chance=chance,
        sustain=sustain,
        offset=offset,
        bootstrap=bootstrap,
        coverage=coverage,
        seed=seed,
    )
    return emerged


def _check_settings(
    threshold: float | None,
    fraction: float | None,
    bootstrap: int,
    coverage: float,
) -> tuple[str, float | None]:
    if threshold is not None and fraction is not None:
        raise DataError(
            "give either a threshold or a fraction of the way to the final value, not both"
        )
    if fraction is not None and not (0 < fraction <= 1):
        raise DataError(f"fraction must be in (0, 1], got {fraction}")
    if threshold is not None and not math.isfinite(threshold):
        raise DataError(f"threshold must be a finite number, got {threshold}")
    if bootstrap < 0:
        raise DataError(f"bootstrap must be a non-negative number of redraws, got {bootstrap}")
    if not 0 < coverage < 1:
        raise DataError(f"coverage must be between 0 and 1, got {coverage}")
    if fraction is not None:
        return "fraction", None
    return "threshold", DEFAULT_THRESHOLD if threshold is None else float(threshold)


def _emergence_with_draws(
    curve: Curve,
    *,
    threshold: float | None,
    fraction: float | None,
    chance: float | None,
    sustain: int,
    offset: float,
    bootstrap: int,
    coverage: float,
    seed: int,
) -> tuple[Emergence, np.ndarray | None]:
    """:func:`emergence`, also returning the redrawn crossing steps (inf = never reached)."""
    mode, threshold = _check_settings(threshold, fraction, bootstrap, coverage)
    if sustain < 1:
        raise DataError(f"sustain must be at least 1 evaluation point, got {sustain}")
    chance = curve.chance if chance is None else float(chance)
    if mode == "fraction" and chance is None:
        raise DataError(
            f"curve {curve.label}: a fraction of the way from chance needs the chance level; "
            "give --chance VALUE (or SKILL=VALUE) or --chance-col"
        )
    notes = list(curve.notes)
    n = curve.n_points
    final = float(curve.value[-1]) if n else None
    base: dict[str, Any] = {
        "run": curve.run,
        "skill": curve.skill,
        "seed": curve.seed,
        "metric": curve.metric,
        "mode": mode,
        "threshold": threshold,
        "fraction": fraction,
        "chance": chance,
        "final_value": final,
        "last_step": float(curve.step[-1]) if n else math.nan,
        "sustain": sustain,
        "n_points": n,
        "coverage": coverage,
        "offset": offset,
    }
    empty: dict[str, Any] = {
        "step": None,
        "step_low": None,
        "step_high": None,
        "bracket": None,
        "tokens": None,
        "flops": None,
        "tokens_ci": None,
        "flops_ci": None,
        "sustained_points": 0,
        "interval_method": "none",
        "n_resamples": 0,
        "reached_fraction": None,
    }
    if n < 2:
        notes.append(f"{n} evaluation point(s): a crossing needs at least 2")
        return Emergence(
            **base, **empty, status="insufficient", level=None, notes=tuple(notes)
        ), None
    level = _level(mode, threshold, fraction, chance, final)
    if level is None:
        notes.append(f"final value {final:g} is not above chance {chance:g}")
        return Emergence(
            **base, **empty, status="no_progress", level=None, notes=tuple(notes)
        ), None
    found = first_crossing(
        curve.step, curve.value, level, sustain=sustain, rising=True, offset=offset
    )
    if found.status == "not_reached":
        notes.append(f"never reaches {level:.4g} (and stays) by the last step {curve.step[-1]:g}")
    if found.status == "at_start":
        notes.append(f"already at {level:.4g} at the first step {curve.step[0]:g}: left-censored")

    draws = None
    interval: dict[str, Any] = {"step_low": None, "step_high": None, "reached_fraction": None}
    method = "none"
    if bootstrap and curve.stderr is None:
        notes.append("no standard errors: no eval-noise interval (the bracket bounds the crossing)")
    elif bootstrap:
        draws = _redraw_steps(
            curve, mode, threshold, fraction, chance, sustain, offset, bootstrap, seed
        )
        method = "eval-noise-bootstrap"
        interval = _percentile_interval(draws, coverage)
        if found.x is None:  # no step, so no interval around one: only the share that get there
            interval.update(step_low=None, step_high=None)
        elif interval["step_high"] is None:
            notes.append("upper end of the interval lies beyond the last step")
    step_ci = (interval["step_low"], interval["step_high"])
    emerged = Emergence(
        **base,
        status=found.status,
        level=level,
        step=found.x,
        **interval,
        bracket=found.bracket,
        tokens=_at(curve, curve.tokens, found.x),
        flops=_at(curve, curve.flops, found.x),
        tokens_ci=_mapped(curve, curve.tokens, step_ci) if method != "none" else None,
        flops_ci=_mapped(curve, curve.flops, step_ci) if method != "none" else None,
        sustained_points=found.sustained_points,
        interval_method=method,
        n_resamples=bootstrap if method != "none" else 0,
        notes=tuple(notes),
    )
    return emerged, draws


def _level(
    mode: str,
    threshold: float | None,
    fraction: float | None,
    chance: float | None,
    final: float | None,
) -> float | None:
    if mode == "threshold":
        return threshold
    assert fraction is not None and chance is not None and final is not None  # checked above
    if final <= chance:
        return None
    return chance + fraction * (final - chance)


def _redraw_steps(
    curve: Curve,
    mode: str,
    threshold: float | None,
    fraction: float | None,
    chance: float | None,
    sustain: int,
    offset: float,
    bootstrap: int,
    seed: int,
) -> np.ndarray:
    """Crossing steps of ``bootstrap`` noisy redraws of the curve (inf where never reached)."""
    assert curve.stderr is not None
    rng = np.random.default_rng(seed)
    y = curve.value + curve.stderr * rng.standard_normal((bootstrap, curve.n_points))
    if mode == "fraction":
        assert fraction is not None and chance is not None
        final = y[:, -1]
        level = np.where(final > chance, chance + fraction * (final - chance), np.inf)
    else:
        level = np.full(bootstrap, threshold, dtype=np.float64)
    u = log_positions(curve.step, offset)
    u_cross, index, found = _crossings(u, y, level, sustain, rising=True)
    steps = np.exp(u_cross) - offset
    lo = curve.step[np.maximum(index - 1, 0)]
    hi = curve.step[index]
    steps = np.clip(steps, lo, hi)
    return np.where(found, steps, np.inf)


def _percentile_interval(draws: np.ndarray, coverage: float) -> dict[str, Any]:
    """Percentile interval of crossing steps; an infinite upper end becomes ``None``."""
    alpha = (1 - coverage) / 2
    reached = float(np.mean(np.isfinite(draws)))
    if reached == 0:
        return {"step_low": None, "step_high": None, "reached_fraction": 0.0}
    lo, hi = np.quantile(draws, [alpha, 1 - alpha], method="inverted_cdf")
    return {
        "step_low": float(lo) if math.isfinite(lo) else None,
        "step_high": float(hi) if math.isfinite(hi) else None,
        "reached_fraction": reached,
    }


def _at(curve: Curve, counts: np.ndarray | None, step: float | None) -> float | None:
    """Tokens or FLOPs at ``step``, linear in step between evaluation points."""
    if counts is None or step is None:
        return None
    return float(np.interp(step, curve.step, counts))


def _mapped(
    curve: Curve, counts: np.ndarray | None, interval: tuple[float | None, float | None]
) -> tuple[float | None, float | None] | None:
    if counts is None:
        return None
    lo, hi = interval
    return (_at(curve, counts, lo), _at(curve, counts, hi))


# ------------------------------------------------------------------------------ grokking delay
@dataclass(frozen=True)
class GrokkingDelay:
    """How long after the training curve the held-out curve reaches the level.

    Attributes
    ----------
    train, heldout : Emergence
        The two crossings.
    status : str
        ``ok``; ``heldout_not_reached`` (the delay exceeds ``delay_bound``);
        ``train_not_reached``; or ``insufficient`` (a curve has too few points or no progress).
    delay : float or None
        Held-out crossing step minus training crossing step.
    delay_low, delay_high : float or None
        Evaluation-noise percentile interval of the delay (both curves need standard errors);
        ``delay_high`` is ``None`` when the upper end lies beyond the held-out curve's end.
    delay_bound : float or None
        When the held-out curve is not reached: the delay is larger than this (its last step
        minus the training crossing).
    ratio : float or None
        Held-out crossing step over training crossing step (when the latter is positive).
    """

    train: Emergence
    heldout: Emergence
    status: str
    delay: float | None
    delay_low: float | None
    delay_high: float | None
    delay_bound: float | None
    ratio: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "status": self.status,
            "delay": jsonable(self.delay),
            "delay_low": jsonable(self.delay_low),
            "delay_high": jsonable(self.delay_high),
            "delay_bound": jsonable(self.delay_bound),
            "ratio": jsonable(self.ratio),
            "train": self.train.to_dict(),
            "heldout": self.heldout.to_dict(),
        }


def grokking_delay(
    train: Curve,
    heldout: Curve,
    *,
    threshold: float | None = None,
    fraction: float | None = None,
    chance: float | None = None,
    sustain: int = DEFAULT_SUSTAIN,
    offset: float = 1.0,
    bootstrap: int = 0,
    coverage: float = 0.95,
    seed: int = 0,
) -> GrokkingDelay:
    """The gap between a training-accuracy curve and a held-out curve reaching the level.

    Both curves use the same settings (see :func:`emergence`); in fraction mode each uses its
    own final value. With standard errors on both curves and ``bootstrap=B``, the interval is
    the percentile interval of the delay over independent redraws of the two curves.

    Returns
    -------
    GrokkingDelay

    Examples
    --------
    >>> import numpy as np
    >>> steps = np.array([0, 10, 100, 1000, 10000.0])
    >>> tr = Curve("r", "mod97", "train_acc", steps, [0.0, 0.5, 1.0, 1.0, 1.0])
    >>> ho = Curve("r", "mod97", "val_acc", steps, [0.0, 0.0, 0.1, 0.5, 1.0])
    >>> d = grokking_delay(tr, ho, threshold=0.9, sustain=1)
    >>> d.status, round(d.delay)
    ('ok', 6247)
    """
    kwargs: dict[str, Any] = {
        "threshold": threshold,
        "fraction": fraction,
        "chance": chance,
        "sustain": sustain,
        "offset": offset,
        "bootstrap": bootstrap,
        "coverage": coverage,
    }
    tr, tr_draws = _emergence_with_draws(train, seed=seed, **kwargs)
    ho, ho_draws = _emergence_with_draws(heldout, seed=seed + 1, **kwargs)
    none: dict[str, Any] = {"delay": None, "delay_low": None, "delay_high": None}
    if not (tr.reached or tr.status == "not_reached") or not (
        ho.reached or ho.status == "not_reached"
    ):
        return GrokkingDelay(tr, ho, "insufficient", **none, delay_bound=None, ratio=None)
    if not tr.reached:
        return GrokkingDelay(tr, ho, "train_not_reached", **none, delay_bound=None, ratio=None)
    assert tr.step is not None
    if not ho.reached:
        bound = ho.last_step - tr.step
        return GrokkingDelay(tr, ho, "heldout_not_reached", **none, delay_bound=bound, ratio=None)
    assert ho.step is not None
    low = high = None
    if tr_draws is not None and ho_draws is not None and np.all(np.isfinite(tr_draws)):
        interval = _percentile_interval(ho_draws - tr_draws, coverage)
        low, high = interval["step_low"], interval["step_high"]
    return GrokkingDelay(
        tr,
        ho,
        "ok",
        delay=ho.step - tr.step,
        delay_low=low,
        delay_high=high,
        delay_bound=None,
        ratio=ho.step / tr.step if tr.step > 0 else None,
    )


# ------------------------------------------------------------------------------ many curves
@dataclass(frozen=True)
class CurveAnalysis:
    """Emergence step and phase-change fit of one curve."""

    emergence: Emergence
    transition: Transition | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "run": self.emergence.run,
            "skill": self.emergence.skill,
            "seed": self.emergence.seed,
            "emergence": self.emergence.to_dict(),
            "transition": None if self.transition is None else self.transition.to_dict(),
        }


def analyze_curves(
    curves: Sequence[Curve] | Any,
    *,
    threshold: float | None = None,
    fraction: float | None = None,
    chance: float | Mapping[str, float] | None = None,
    sustain: int = DEFAULT_SUSTAIN,
    offset: float = 1.0,
    bootstrap: int = 200,
    coverage: float = 0.95,
    seed: int = 0,
    fit_transitions: bool = True,
    workers: int | None = None,
) -> tuple[CurveAnalysis, ...]:
    """Emergence step (and, optionally, a sigmoid phase-change fit) of every curve.

    Parameters
    ----------
    curves : CurveSet or sequence of Curve
    threshold, fraction, sustain, offset, coverage
        As in :func:`emergence`.
    chance : float, mapping of skill -> float, or None
        Chance level for every curve, or per skill (the key ``"*"`` gives the default for
        skills not listed); curves without one use ``curve.chance``. In fraction mode every
        curve needs one. It also fixes the sigmoid's floor.
    bootstrap : int
        Redraws for the emergence interval and resamples for the transition fit.
    seed : int
        Base seed; curve ``i`` uses a seed derived from ``(seed, i)``.
    fit_transitions : bool
        Also fit the phase change (:func:`scalelab.curves.transition.fit_transition`).
    workers : int, optional
        Threads for the fitting engine.

    Returns
    -------
    tuple of CurveAnalysis
    """
    from scalelab.curves.transition import fit_transition

    _check_settings(threshold, fraction, bootstrap, coverage)
    results = []
    for i, curve in enumerate(curves):
        level_chance = _chance_for(chance, curve)
        if fraction is not None and level_chance is None:
            raise DataError(
                f"no chance level for skill {curve.skill!r}: give --chance {curve.skill}=VALUE "
                "(or a default --chance VALUE, or --chance-col)"
            )
        curve_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        emerged = emergence(
            curve,
            threshold=threshold,
            fraction=fraction,
            chance=level_chance,
            sustain=sustain,
            offset=offset,
            bootstrap=bootstrap,
            coverage=coverage,
            seed=curve_seed,
        )
        fitted = None
        if fit_transitions:
            fitted = fit_transition(
                curve,
                chance=level_chance,
                offset=offset,
                bootstrap=bootstrap,
                coverage=coverage,
                seed=curve_seed,
                workers=workers,
            )
        results.append(CurveAnalysis(emerged, fitted))
    return tuple(results)


def _chance_for(chance: float | Mapping[str, float] | None, curve: Curve) -> float | None:
    if isinstance(chance, Mapping):
        value = chance.get(curve.skill, chance.get("*"))
        return curve.chance if value is None else float(value)
    return curve.chance if chance is None else float(chance)
