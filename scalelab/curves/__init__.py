"""Learning-curve analytics over one run's curves and over tables of many runs.

Read a tidy table with :func:`read_curves`; then per curve :func:`emergence` (the step at
which a skill is acquired and stays acquired), :func:`fit_transition` (a sigmoid phase-change
fit in log-step), :func:`grokking_delay` (train vs held-out), and for loss curves
:func:`loss_slope`, :func:`tokens_to_target` and :func:`speedup`. See docs/curves.md.
"""

from scalelab.curves.emergence import (
    Crossing,
    CurveAnalysis,
    Emergence,
    GrokkingDelay,
    analyze_curves,
    emergence,
    first_crossing,
    grokking_delay,
)
from scalelab.curves.speed import Reach, Speedup, loss_slope, speedup, tokens_to_target
from scalelab.curves.tidy import Curve, CurveSet, read_curves
from scalelab.curves.transition import Transition, fit_transition

__all__ = [
    "Crossing",
    "Curve",
    "CurveAnalysis",
    "CurveSet",
    "Emergence",
    "GrokkingDelay",
    "Reach",
    "Speedup",
    "Transition",
    "analyze_curves",
    "emergence",
    "first_crossing",
    "fit_transition",
    "grokking_delay",
    "loss_slope",
    "read_curves",
    "speedup",
    "tokens_to_target",
]

from scalelab.curves.aggregation import (
    AggregateFit,
    compounding_table,
    fit_aggregate_power_law,
    per_step_accuracy,
    quantization_exponent,
    quantization_loss,
    task_accuracy,
    transition_width,
    zipf_exponent_from,
    zipf_frequencies,
)
from scalelab.curves.compression import (
    CodeLength,
    Comparison,
    OnlineLoss,
    code_length,
    compare_code_lengths,
)

__all__ += [
    "AggregateFit",
    "CodeLength",
    "Comparison",
    "OnlineLoss",
    "code_length",
    "compare_code_lengths",
    "compounding_table",
    "fit_aggregate_power_law",
    "per_step_accuracy",
    "quantization_exponent",
    "quantization_loss",
    "task_accuracy",
    "transition_width",
    "zipf_exponent_from",
    "zipf_frequencies",
]
