"""Detected transitions of every accuracy curve, with progress (the sigmoid phase-change fit).

Each curve gets :func:`scalelab.curves.fit_transition`: a sigmoid in log-step whose midpoint
is the transition step, with a bootstrap interval and an honest status (``ok``, ``weak``,
``no_transition``, ...). Curve ``i`` is fitted with the seed ``SeedSequence([seed, i])``, as
:func:`scalelab.curves.analyze_curves` does, so the report's numbers match ``scalelab
curves`` run with the same settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from scalelab.curves import Curve, Transition, fit_transition
from scalelab.errors import DataError
from scalelab.report.progress import ProgressCallback, Steps

__all__ = ["chance_for", "detect_transitions", "sigmoid_values"]


def chance_for(chance: float | Mapping[str, float] | None, curve: Curve) -> float | None:
    """The chance level of ``curve``: per skill (key ``"*"`` is the default) or global."""
    if isinstance(chance, Mapping):
        value = chance.get(curve.skill, chance.get("*"))
        return curve.chance if value is None else float(value)
    return curve.chance if chance is None else float(chance)


def detect_transitions(
    curves: Sequence[Curve],
    *,
    chance: float | Mapping[str, float] | None = None,
    bootstrap: int = 100,
    coverage: float = 0.95,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> tuple[Transition, ...]:
    """Fit the phase change of every curve; one :class:`Transition` per curve, in order.

    Parameters
    ----------
    curves : sequence of Curve
    chance : float, mapping of skill -> float, or None
        Fixes the sigmoid's floor (see :func:`scalelab.curves.fit_transition`).
    bootstrap : int
        Resamples for the interval of each transition step.
    coverage : float
        Interval coverage.
    seed : int
        Base seed.
    progress : callable, optional
        Receives a progress line after each curve.
    """
    if not 0 < coverage < 1:
        raise DataError(f"coverage must be between 0 and 1, got {coverage}")
    steps = Steps("transition fits", len(curves), progress)
    steps.start()
    out = []
    for i, curve in enumerate(curves):
        curve_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        out.append(
            fit_transition(
                curve,
                chance=chance_for(chance, curve),
                bootstrap=bootstrap,
                coverage=coverage,
                seed=curve_seed,
            )
        )
        steps.advance(curve.label)
    return tuple(out)


def sigmoid_values(transition: Transition, steps: np.ndarray) -> np.ndarray:
    """The fitted sigmoid of an identified transition, evaluated at ``steps``."""
    t = transition
    if not t.identified or t.step is None or t.width is None:
        raise DataError(f"transition of {t.run} / {t.skill} has status {t.status}: no fitted curve")
    assert t.floor is not None and t.ceiling is not None
    from scipy.special import expit

    u = np.log(np.asarray(steps, dtype=float) + t.offset) - math.log(t.step + t.offset)
    return t.floor + (t.ceiling - t.floor) * expit(u / t.width)
