"""What :func:`scalelab.demo.run_demo` produced: files, numbers, and the printed summary."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.demo.analysis import ACCURACY_LEVEL, SizeSpeedup
from scalelab.demo.tables import SKILL, TEXT, DemoRun

__all__ = ["DEMO_SCHEMA", "DemoResult", "Forecast"]

DEMO_SCHEMA = "scalelab.demo/1"


@dataclass(frozen=True)
class Forecast:
    """The fitted law's prediction for a model larger than any trained.

    Attributes
    ----------
    size : str
        Rung of the size ladder.
    N, D : float
        Non-embedding parameters and text tokens of the predicted run.
    mean : float
        The law's prediction of the text loss.
    lower, upper : float
        Interval for a new run (parameter draws plus observation noise,
        :func:`scalelab.predict.prediction_interval`).
    law_lower, law_upper : float
        Interval of the law alone (parameter uncertainty, :meth:`FitResult.predict`).
    coverage : float
    method : str
        How ``lower``/``upper`` were simulated.
    warning : str
        The out-of-range warning (:meth:`scalelab.predict.Extrapolation.message`).
    """

    size: str
    N: float
    D: float
    mean: float
    lower: float
    upper: float
    law_lower: float
    law_upper: float
    coverage: float
    method: str
    warning: str

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in vars(self).items()}


@dataclass(frozen=True)
class DemoResult:
    """Everything one demo run wrote and measured.

    Attributes
    ----------
    out_dir : pathlib.Path
    quick : bool
    files : mapping of str to pathlib.Path
        ``grid``, ``store``, ``runs_csv``, ``dev_loss_csv``, ``fit``, ``backtest``,
        ``report``, ``summary`` and, when Chromium was found, ``screenshot``.
    runs : tuple of DemoRun
    trained, skipped : int
        Runs trained now, and runs already finished in the store (resumed demo).
    fit : scalelab.fit.FitResult
        The dev-loss law.
    fit_mix : str
        The mixture whose runs the law was fitted to (the one with the most text).
    forecast : Forecast
    backtest : scalelab.predict.Backtest
        The law fitted without the largest size, predicting it.
    transitions : tuple of scalelab.curves.Transition
        One per run: the skill's accuracy curve's sigmoid transition (from the report).
    speedups : tuple of SizeSpeedup
    persistence : scalelab.predict.Persistence or None
    skills : scalelab.predict.SkillsAtScale or None
    notes : tuple of str
        What was skipped and why (no Chromium, too few sizes for a trend, ...).
    seconds, cpu_seconds : float
        Wall-clock and CPU time (this process and its workers).
    stage_seconds : mapping of str to float
    """

    out_dir: Path
    quick: bool
    files: Mapping[str, Path]
    runs: tuple[DemoRun, ...]
    trained: int
    skipped: int
    fit: Any
    fit_mix: str
    forecast: Forecast
    backtest: Any
    transitions: tuple[Any, ...]
    speedups: tuple[SizeSpeedup, ...]
    persistence: Any
    skills: Any
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    stage_seconds: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (schema ``scalelab.demo/1``); the fit and backtest are in their files."""
        return {
            "schema": DEMO_SCHEMA,
            "quick": self.quick,
            "files": {k: str(v) for k, v in self.files.items()},
            "runs": [{k: _clean(v) for k, v in vars(r).items()} for r in self.runs],
            "trained": self.trained,
            "skipped": self.skipped,
            "fit": {
                "law": self.fit.law.name,
                "mix": self.fit_mix,
                "params": {k: _clean(e.value) for k, e in self.fit.params.items()},
                "n_points": self.fit.n_points,
                "rmse": _clean(self.fit.stats.get("rmse")),
            },
            "forecast": self.forecast.to_dict(),
            "backtest": {
                "holdout": self.backtest.holdout,
                "n_fit": self.backtest.n_fit,
                "n_holdout": self.backtest.n_holdout,
                "metrics": {k: _clean(v) for k, v in self.backtest.metrics.items()},
            },
            "accuracy_level": ACCURACY_LEVEL,
            "transitions": [t.to_dict() for t in self.transitions],
            "speedups": [s.to_dict() for s in self.speedups],
            "persistence": self.persistence.to_dict() if self.persistence is not None else None,
            "skills": self.skills.to_dict() if self.skills is not None else None,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "stage_seconds": {k: round(v, 2) for k, v in self.stage_seconds.items()},
        }

    def summary(self) -> str:
        """The text ``scalelab demo`` prints: what ran, the key numbers, where the files are."""
        lines = [self._grid_line(), ""]
        lines += self._skill_lines()
        lines += ["", *self._law_lines()]
        lines += ["", *self._files_lines()]
        return "\n".join(lines)

    # ----------------------------------------------------------------- pieces
    def _grid_line(self) -> str:
        sizes = ", ".join(dict.fromkeys(f"{r.size} ({_count(r.n_params)})" for r in self.runs))
        mixes = " / ".join(dict.fromkeys(r.mix for r in self.runs))
        now = f"{self.trained} trained now, {self.skipped} already done"
        return (
            f"scalelab demo{' --quick' if self.quick else ''}: {len(self.runs)} runs ({now}) = "
            f"sizes {sizes} x mixtures {mixes}, {self.runs[0].steps} steps each; "
            f"{_duration(self.seconds)} wall, {_duration(self.cpu_seconds)} CPU"
        )

    def _skill_lines(self) -> list[str]:
        out = [f"skill {SKILL!r} (exact match on 256 held-out sums; chance ~0):"]
        by_run = {t.run: t for t in self.transitions}
        for r in self.runs:
            t = by_run.get(r.run_id)
            acc = "-" if r.final_accuracy is None else f"{r.final_accuracy:.2f}"
            if t is not None and t.identified:
                lo = "?" if t.step_low is None else f"{t.step_low:.0f}"
                hi = "?" if t.step_high is None else f"{t.step_high:.0f}"
                where = f"transition at step {t.step:.0f} [{lo}, {hi}] ({t.status})"
            else:
                where = f"no transition ({t.status if t is not None else 'not fitted'})"
            out.append(f"  {r.size:>6} {r.mix:<10} final accuracy {acc}; {where}")
        if self.speedups:
            parts = ", ".join(f"{s.size} {s.describe()}" for s in self.speedups)
            out.append(
                f"  task-heavy over even, tokens to accuracy {ACCURACY_LEVEL:g}: {parts}"
            )
        p = self.persistence
        if p is not None:
            out.append(
                f"  scale caveat at {self.forecast.size} ({_count(p.target_n)}): speedup "
                f"{p.predicted:.3g} [{p.low:.3g}, {p.high:.3g}] -> {p.verdict} "
                f"({p.trend.n_sizes} sizes, one seed each: a trend with {p.trend.dof} degree(s) "
                "of freedom)"
            )
        if self.skills is not None:
            for s in self.skills.skills:
                if s.status != "ok" or not s.predictions:
                    out.append(f"  crossing of {ACCURACY_LEVEL:g} against N: {s.status} ({s.reason})")
                    continue
                pr = s.predictions[0]
                out.append(
                    f"  crossing of {ACCURACY_LEVEL:g} (task-heavy) ~ N^{s.exponent:.2f}; "
                    f"predicted at {self.forecast.size}: step {pr.value:.0f} "
                    f"[{pr.low:.0f}, {pr.high:.0f}]"
                )
        return out

    def _law_lines(self) -> list[str]:
        res, f, bt = self.fit, self.forecast, self.backtest
        params = ", ".join(f"{k} {_g(e.value)}" for k, e in res.params.items())
        m = bt.metrics
        inside = sum(r.inside for r in bt.rows)
        pct = f"{100 * f.coverage:g}%"
        return [
            f"dev loss ({TEXT!r} held-out loss, nats/byte) ~ {res.law.name}(N, D) on the "
            f"{self.fit_mix} runs' {res.n_points} evaluations, D = {TEXT} tokens seen:",
            f"  {params}; RMSE {res.stats.get('rmse', math.nan):.4f}",
            f"  prediction for {f.size} (N = {_count(f.N)}, D = {_count(f.D)}): "
            f"{f.mean:.3f}, {pct} interval for a run [{f.lower:.3f}, {f.upper:.3f}] "
            f"(law alone [{f.law_lower:.3f}, {f.law_upper:.3f}])",
            f"  {f.warning or 'inside the fitted range'}",
            f"  backtest (fit without N >= {_count(max(r.n_params for r in self.runs))}, predict "
            f"it): ARE {100 * m['are']:.2f}%, {pct} coverage {100 * m['coverage']:.0f}% "
            f"({inside}/{len(bt.rows)})",
        ]

    def _files_lines(self) -> list[str]:
        f = self.files
        out = [f"report: {f['report']}"]
        if "screenshot" in f:
            out.append(f"screenshot: {f['screenshot']}")
        out.append(
            f"files: {f['grid'].name}, {f['runs_csv'].name}, {f['dev_loss_csv'].name}, "
            f"{f['fit'].name}, {f['backtest'].name}, {f['summary'].name}, store/ in {self.out_dir}"
        )
        out += [f"note: {n}" for n in self.notes]
        return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _g(x: float) -> str:
    return f"{x:.4g}"


def _count(x: float) -> str:
    """``447552 -> '448k'``."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
