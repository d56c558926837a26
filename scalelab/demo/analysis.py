"""Across the demo's runs: the mixture speedup per size, whether it persists, skill crossings.

* :func:`mixture_speedups` -- per model size, how many times fewer tokens the ``task-heavy``
  run needs than the ``even`` run to reach an accuracy level on the skill
  (:func:`scalelab.curves.speedup`; one seed per run, so no interval; a run that never reaches
  the level makes the speedup a bound).
* :func:`speedup_persistence` -- the scale caveat: the speedups against model size, carried to
  the target size (:func:`scalelab.predict.persistence`), when at least 3 sizes have one.
* :func:`skill_crossings` -- the step at which each run's accuracy reaches the level against
  model size, fitted as a power law and carried to the target size
  (:func:`scalelab.predict.skills_at_scale`), on the runs of one mixture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.demo.tables import SKILL, DemoRun
from scalelab.store.table import Table

__all__ = [
    "ACCURACY_LEVEL",
    "SizeSpeedup",
    "mixture_speedups",
    "skill_crossings",
    "speedup_persistence",
]

#: the accuracy level the speedups and crossings are measured at
ACCURACY_LEVEL = 0.5

FAST, SLOW = "task-heavy", "even"


@dataclass(frozen=True)
class SizeSpeedup:
    """The speedup of the task-heavy mixture over the even one at one model size.

    Attributes
    ----------
    size : str
    n_params : float
    speedup : scalelab.curves.Speedup
        ``tokens(even) / tokens(task-heavy)`` to reach :data:`ACCURACY_LEVEL`.
    """

    size: str
    n_params: float
    speedup: Any

    @property
    def value(self) -> float | None:
        """The speedup when both runs reach the level, else ``None``."""
        return self.speedup.speedup if self.speedup.status == "ok" else None

    def describe(self) -> str:
        """``"1.32x"``, ``">= 1.8x (even never reaches 0.5)"``, ..."""
        s = self.speedup
        if s.status == "ok":
            return f"{s.speedup:.3g}x"
        if s.status == "baseline_not_reached":
            return f">= {s.bound:.3g}x ({SLOW} never reaches {ACCURACY_LEVEL:g})"
        if s.status == "run_not_reached":
            return f"<= {s.bound:.3g}x ({FAST} never reaches {ACCURACY_LEVEL:g})"
        return f"none ({s.status.replace('_', ' ')})"

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "n_params": self.n_params, **self.speedup.to_dict()}


def mixture_speedups(curves: Any, runs: Sequence[DemoRun]) -> tuple[SizeSpeedup, ...]:
    """One :class:`SizeSpeedup` per size that has a run of both mixtures (smallest first)."""
    from scalelab.curves import speedup

    by_size: dict[str, dict[str, DemoRun]] = {}
    for r in runs:
        by_size.setdefault(r.size, {})[r.mix] = r
    out = []
    for size, pair in by_size.items():
        if FAST not in pair or SLOW not in pair:
            continue
        s = speedup(
            curves,
            baseline=pair[SLOW].run_id,
            run=pair[FAST].run_id,
            target=ACCURACY_LEVEL,
            kind="accuracy",
            skill=SKILL,
        )
        out.append(SizeSpeedup(size, pair[FAST].n_params, s))
    return tuple(sorted(out, key=lambda s: s.n_params))


def speedup_persistence(speedups: Sequence[SizeSpeedup], target_n: float) -> tuple[Any, str]:
    """Fit the speedups against size and predict it at ``target_n``.

    Returns
    -------
    (Persistence or None, str)
        The verdict, or ``None`` with the reason it could not be made.
    """
    from scalelab.predict.persistence import persistence

    if not speedups:
        return None, "the grid has one mixture, so there is no mixture speedup to carry"
    measured = [s for s in speedups if s.value is not None]
    sizes = sorted({s.n_params for s in measured})
    if len(sizes) < 3:
        return None, (
            f"the speedup is measured at {len(sizes)} size(s) (both mixtures must reach accuracy "
            f"{ACCURACY_LEVEL:g}); a trend against size needs 3"
        )
    result = persistence(
        [s.n_params for s in measured],
        [float(s.value) for s in measured],  # type: ignore[arg-type]
        target_n=target_n,
        kind="ratio",
        label=f"speedup of {FAST} over {SLOW}",
    )
    return result, ""


def skill_crossings(table: Table, runs: Sequence[DemoRun], target_n: float) -> tuple[Any, str]:
    """Crossing steps of the skill against size for the task-heavy runs, predicted at ``target_n``.

    Returns
    -------
    (SkillsAtScale or None, str)
        The fit, or ``None`` with the reason it could not be made.
    """
    from scalelab.errors import DataError
    from scalelab.predict.skills import skills_at_scale

    chosen = [r for r in runs if r.mix == FAST]
    if len({r.n_params for r in chosen}) < 3:
        return None, f"the {FAST} runs cover fewer than 3 sizes"
    ids = [r.run_id for r in chosen]
    sizes = {r.run_id: r.n_params for r in chosen}
    mask = (
        (table.column("split") == "eval")
        & (table.column("source") == SKILL)
        & (table.column("metric") == "acc")
        & np.isin(table.column("run"), ids)
    )
    sub = table.filter(mask)
    columns = {
        "run": sub.column("run").tolist(),
        "skill": sub.column("source").tolist(),
        "step": sub.numeric("step").tolist(),
        "acc": sub.numeric("value").tolist(),
        "N": [sizes[r] for r in sub.column("run").tolist()],
    }
    try:
        result = skills_at_scale(
            columns,
            size_col="N",
            target_n=target_n,
            metric="acc",
            skill_col="skill",
            threshold=ACCURACY_LEVEL,
            unit="step",
        )
    except DataError as exc:
        return None, str(exc)
    return result, ""
