"""``scalelab demo [-o DIR]``: the end-to-end pipeline on CPU in a few minutes.

Trains a small grid (3 model sizes x 2 data mixtures), measures when a skill emerges and how
much the mixture speeds it up, fits and backtests a scaling law, forecasts a larger model and
writes the report. Progress goes to stderr, the summary to stdout. Imports torch and
matplotlib only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "register", "run_demo_command"]

_EPILOG = """\
examples:
  scalelab demo                       # about 5 CPU-minutes; writes scalelab-demo/
  scalelab demo -o demo/ --workers 2  # rerun on the same folder: finished runs are skipped
  scalelab demo --quick -o quick/     # a one-minute smoke test (3 small runs)
"""


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand to an argparse subparsers object.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The object returned by ``parser.add_subparsers(...)``.
    """
    p = sub.add_parser(
        "demo",
        help="train a small grid, fit and backtest a scaling law, forecast, write a report",
        description="The whole pipeline on CPU: a grid of 3 model sizes x 2 data mixtures "
        "(a skill task and a text domain), the skill's emergence and the mixture speedup per "
        "size, a Chinchilla law of the text loss with a backtest on the largest size, a "
        "forecast for a larger model with its interval, and an HTML report. Rerunning on the "
        "same folder skips finished runs and rebuilds the analysis.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-o", "--out", default="scalelab-demo", metavar="DIR",
                   help="output folder (default scalelab-demo; created if absent)")
    p.add_argument("--workers", type=int, default=2,
                   help="runs trained at once, one process each (default 2)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: 3 small sizes, one mixture, short runs (about a minute)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    """Run the demo and print its summary; returns the exit code."""
    from scalelab.demo import run_demo

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_demo(
        args.out, workers=args.workers, quick=args.quick, progress=None if args.quiet else progress
    )
    print(result.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scalelab demo`` alone (``argv`` starts with ``"demo"``); returns the exit code.

    Errors are handled as in :func:`scalelab.cli.main.main`: a :class:`ScalelabError` prints
    one ``error: ...`` line on stderr and returns 2.
    """
    from scalelab.cli.main import run_commands

    return run_commands(argv, register)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
