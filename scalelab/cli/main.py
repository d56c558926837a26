"""The ``scalelab`` command: parse arguments, make one library call, print or write the result.

Start-up stays fast: this module imports only the standard library; each subcommand imports
what it needs when it runs (numpy/scipy for fitting; torch only for training commands).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from scalelab._version import __version__

__all__ = ["build_parser", "dispatch", "main", "run_commands"]

EXAMPLES = """\
examples:
  scalelab fit chinchilla --law chinchilla --x N=params_N --x D=tokens_D --y loss \\
      --where "excluded_by_epoch == 0" --bootstrap 1000 --json fit.json
  scalelab predict fit.json --at N=70e9 D=1.4e12
  scalelab optimal fit.json --compute 5.88e23
  scalelab plan fit.json --compute 5.88e23 1e25    # compute-optimal N, D with intervals
  scalelab backtest chinchilla --law chinchilla --x N=params_N --x D=tokens_D --y loss \
      --where "excluded_by_epoch == 0" --holdout "params_N >= 2e9" --bootstrap 1000
  scalelab laws            # the laws you can fit
  scalelab datasets        # the bundled datasets (usable wherever a file is)
"""


#: modules under scalelab.cli with a ``register(subparsers)`` function, in help order
COMMAND_MODULES = (
    "cmd_predict", "cmd_scale", "cmd_curves", "cmd_compress", "cmd_train", "cmd_grid", "cmd_runs",
    "cmd_report", "cmd_wandb", "cmd_demo",
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2, matching scalelab's other errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="scalelab",
        description="Fit scaling laws to logged runs and predict larger ones before paying for them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"scalelab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    import importlib

    from scalelab.cli import commands

    commands.add_fit(sub)
    commands.add_predict(sub)
    commands.add_optimal(sub)
    for name in COMMAND_MODULES:
        importlib.import_module(f"scalelab.cli.{name}").register(sub)
    commands.add_laws(sub)
    commands.add_datasets(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scalelab`` console script; returns the exit code."""
    return dispatch(build_parser(), argv)


def run_commands(argv: Sequence[str] | None, *registers: Callable[[Any], object]) -> int:
    """Run ``argv`` against a parser holding only the given commands (for a module's ``main``)."""
    parser = _Parser(prog="scalelab")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for register in registers:
        register(sub)
    return dispatch(parser, argv)


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, call the chosen handler, and turn user errors into one ``error:`` line (exit 2)."""
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from scalelab.errors import ScalelabError

    try:
        return int(args.handler(args) or 0)
    except ScalelabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
