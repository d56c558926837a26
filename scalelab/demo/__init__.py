"""``scalelab demo``: the end-to-end pipeline on CPU in a few minutes.

:func:`run_demo` trains a small grid (3 model sizes x 2 data mixtures of a skill task and a
text domain), measures when the skill emerges in each run and how much the task-heavy mixture
speeds it up, fits a scaling law to the text loss, backtests it on the largest size, forecasts
a larger model with a prediction interval and an out-of-range warning, and writes an HTML
report with every figure. See docs/demo.md.
"""

from scalelab.demo.grids import FULL_GRID, QUICK_GRID, grid_text, load_demo_grid
from scalelab.demo.pipeline import run_demo
from scalelab.demo.result import DemoResult, Forecast

__all__ = [
    "FULL_GRID",
    "QUICK_GRID",
    "DemoResult",
    "Forecast",
    "grid_text",
    "load_demo_grid",
    "run_demo",
]
