"""Command-line options shared by the commands that read learning curves from a table.

``scalelab curves``, ``speedup`` and ``skills`` all read one table of evaluations (a long table
with a metric-name and a value column, or a wide one with a column per metric) and find where a
curve reaches a level. Their options for the table's columns and for the level are defined once
here, so the commands spell and document them the same way.
"""

from __future__ import annotations

import argparse
import math

__all__ = [
    "DATA_HELP","add_hold_args", "add_level_args", "add_table_args", "num"]


DATA_HELP = (
    "a .csv, .tsv, .jsonl, .json or .parquet file, or a bundled dataset name "
    "(see `scalelab datasets`)"
)


def add_table_args(p: argparse.ArgumentParser, metric_default: str | None) -> None:
    """The table and its columns: ``DATA``, run, skill, step, metric, value and tokens columns.

    ``metric_default=None`` makes ``--metric`` required.
    """
    p.add_argument("data", metavar="DATA", help=DATA_HELP)
    p.add_argument("--run-col", default="run", metavar="COL", help="run column (default: run)")
    p.add_argument("--skill-col", metavar="COL", help="skill / task column (default: one skill)")
    p.add_argument("--step-col", default="step", metavar="COL", help="step column (default: step)")
    p.add_argument(
        "--metric",
        default=metric_default,
        required=metric_default is None,
        help="metric to read: a value of --metric-col (long table) or a column (wide table)"
        + (f"; default {metric_default}" if metric_default else ""),
    )
    p.add_argument(
        "--metric-col",
        metavar="COL",
        help="metric-name column of a long table (default: 'metric' if the table has it)",
    )
    p.add_argument(
        "--value-col", default="value", metavar="COL", help="value column (default: value)"
    )
    p.add_argument("--tokens-col", metavar="COL", help="tokens seen by each step")


def add_level_args(p: argparse.ArgumentParser) -> None:
    """The level a curve must reach: threshold or fraction of the way from chance, chance, noise."""
    level = p.add_mutually_exclusive_group()
    level.add_argument("--threshold", type=float, help="absolute level to reach (default 0.9)")
    level.add_argument(
        "--fraction",
        type=float,
        help="level as a fraction of the way from chance to the final value, e.g. 0.5",
    )
    p.add_argument(
        "--chance",
        action="append",
        metavar="[SKILL=]VALUE",
        help="chance level, for all skills or one (repeatable); also fixes a sigmoid's floor",
    )
    p.add_argument("--chance-col", metavar="COL", help="column holding each row's chance level")
    p.add_argument("--stderr-col", metavar="COL", help="standard error of each value (eval noise)")


def add_hold_args(p: argparse.ArgumentParser) -> None:
    """How a crossing is read: evaluations it must hold for, and the log offset."""
    p.add_argument(
        "--sustain",
        type=int,
        default=3,
        metavar="K",
        help="evaluation points (crossing included) that must stay at the level (default 3)",
    )
    p.add_argument(
        "--offset",
        type=float,
        default=1.0,
        help="interpolate in log(x + offset); 1 keeps step 0 usable (default 1)",
    )


def num(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits; ``-`` for None, inf and nan."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"
