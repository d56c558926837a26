"""Reports: matplotlib figures (PNG and SVG) and a self-contained HTML page built from results.

``build_report(DIR, store=..., fits=[...], backtests=[...])`` draws per-skill learning curves
with their detected transitions, an emergence map (skill x step per size), each fit against
its data with residuals, its extrapolation with prediction bands out to a target, the
isoFLOP view with the compute-optimal frontier (laws of N and D) and backtest tables, and
writes ``DIR/index.html``. :func:`screenshot` renders a page in headless Chromium. matplotlib
is needed (``pip install 'scalelab[report]'``) and is imported only when figures are drawn.
See docs/report.md.
"""

from scalelab.report._mpl import FigureFile
from scalelab.report.backtest import Backtest, BacktestRow, load_backtest, parse_backtest
from scalelab.report.builder import Report, build_report
from scalelab.report.curve_data import CurveData, curves_from_store, curves_from_table
from scalelab.report.fit_data import parse_target
from scalelab.report.render import find_chromium, screenshot

__all__ = [
    "Backtest",
    "BacktestRow",
    "CurveData",
    "FigureFile",
    "Report",
    "build_report",
    "curves_from_store",
    "curves_from_table",
    "find_chromium",
    "load_backtest",
    "parse_backtest",
    "parse_target",
    "screenshot",
]
