"""``scalelab.predict``: across runs and scales -- dev loss with prediction intervals,
extrapolation warnings, compute-optimal plans, backtests, per-skill emergence at scale,
mixture recommendations, whether a data effect persists at a larger size, and downstream
accuracy (two-step through task loss, or direct) as chained fits.

Names are imported lazily, so ``import scalelab.predict`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> submodule that defines it
_EXPORTS = {
    "Backtest": "backtest",
    "BacktestRow": "backtest",
    "run_backtest": "backtest",
    "Extrapolation": "extrapolation",
    "check_extrapolation": "extrapolation",
    "extrapolation_distance": "extrapolation",
    "fitted_ranges": "extrapolation",
    "NoiseModel": "intervals",
    "extrapolation_noise": "intervals",
    "noise_from_fit": "intervals",
    "parameter_draws": "intervals",
    "prediction_interval": "intervals",
    "residual_noise": "intervals",
    "BudgetPlan": "plan",
    "Interval": "plan",
    "Plan": "plan",
    "compute_optimal_plan": "plan",
    "Crossings": "skills",
    "SkillScaling": "skills",
    "SkillsAtScale": "skills",
    "measure_crossings": "skills",
    "predict_skills": "skills",
    "skills_at_scale": "skills",
    "MixtureRecommendation": "mixture",
    "recommend_mixture": "mixture",
    "Persistence": "persistence",
    "SizeTrend": "persistence",
    "fit_size_trend": "persistence",
    "persistence": "persistence",
    "persistence_from_table": "persistence",
    "Chain": "chain",
    "Stage": "chain",
    "checkpoint_table": "downstream",
    "fit_direct": "downstream",
    "fit_two_step": "downstream",
    "score_targets": "downstream",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scalelab.predict' has no attribute {name!r}")
    return getattr(importlib.import_module(f"scalelab.predict.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
