"""``scalelab runs ROOT``: list the runs of a store and export them as one tidy table.

Imports only the standard library at module import; the store (and numpy) load when the
command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "register", "run_runs"]

DESCRIPTION = """\
List the runs in a run store: status (pending, running, finished, failed, interrupted =
crashed and resumable, corrupt), last step, number of metrics records and the problems
found. Optionally export every record as one tidy table that `scalelab fit` reads directly.
"""

EPILOG = """\
examples:
  scalelab runs runs/                       # list the runs
  scalelab runs runs/ --export runs.csv     # one row per metrics record, config as columns
  scalelab fit runs.csv --law power_law --x x=tokens --y value \\
      --where "metric == 'loss' and split == 'eval' and tokens > 0"
"""


def register(sub: Any) -> None:
    """Add the ``runs`` subcommand to an argparse subparsers object."""
    p = sub.add_parser(
        "runs",
        help="list the runs in a run store and export them as one table",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", metavar="ROOT", help="the run store directory")
    p.add_argument(
        "--export",
        metavar="OUT",
        help="write every metrics record to OUT.csv or OUT.parquet (run, status, config "
        "columns, step, examples, tokens, flops, split, source, metric, value)",
    )
    p.add_argument(
        "--config-columns",
        metavar="KEYS",
        help="comma-separated dotted config keys to export (default: the keys that differ "
        "between runs, plus seed / n_params when present); 'all' for every key",
    )
    p.add_argument("--json", action="store_true", help="print the listing as JSON")
    p.set_defaults(handler=run_runs)


def _config_columns(text: str | None) -> list[str] | str | None:
    if text is None:
        return None
    if text.strip() == "all":
        return "all"
    from scalelab.errors import DataError

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise DataError("--config-columns: give comma-separated config keys, or 'all'")
    return names


def run_runs(args: argparse.Namespace) -> int:
    """Handler of ``scalelab runs``: list the store, export it when asked."""
    from scalelab.store.runs import RunStore

    columns = _config_columns(args.config_columns)
    store = RunStore(args.root, create=False)
    infos = store.runs()
    problems = list(store.problems)
    exported: dict[str, Any] | None = None
    if args.export:
        table = store.export(args.export, config_columns=columns)
        problems = list(store.problems)
        exported = {
            "path": args.export,
            "rows": len(table),
            "runs": len(set(table.column("run"))),
            "columns": list(table.columns),
        }
    if args.json:
        payload = {
            "root": str(store.root),
            "runs": [info.to_dict() for info in infos],
            "problems": problems,
            "export": exported,
        }
        print(json.dumps(payload, indent=1, allow_nan=False))
        return 0
    _print_listing(str(store.root), infos, problems)
    if exported is not None:
        print(
            f"wrote {exported['path']}: {exported['rows']} rows from {exported['runs']} runs, "
            f"columns {', '.join(exported['columns'])}"
        )
    return 0


def _print_listing(root: str, infos: Sequence[Any], problems: Sequence[str]) -> None:
    if not infos:
        print(f"no runs in {root}")
    else:
        width = max(12, *(len(info.run_id) for info in infos))
        print(f"{'run':<{width}}  {'status':<11}  {'last step':>9}  {'records':>8}  note".rstrip())
        for info in infos:
            step = "-" if info.last_step is None else str(info.last_step)
            note = _note(info)
            line = f"{info.run_id:<{width}}  {info.status:<11}  {step:>9}  {info.n_records:>8}  {note}"
            print(line.rstrip())
        counts = Counter(info.status for info in infos)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        print(f"{len(infos)} runs: {summary}")
    if problems:
        print("problems:")
        for message in problems:
            print(f"  {message}")


def _note(info: Any) -> str:
    if info.status == "running" and info.pid is not None:
        return f"pid {info.pid}" + (f" on {info.host}" if info.host else "")
    if info.status == "failed" and info.error:
        return info.error.strip().splitlines()[-1][:80]
    if info.problems:
        return f"{len(info.problems)} problem(s), see below"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scalelab runs ...`` with only this command registered (for tests and scripts).

    ``argv`` starts with ``runs``, as on the ``scalelab`` command line. Errors are handled as
    in :func:`scalelab.cli.main.main`: a :class:`~scalelab.errors.ScalelabError` prints one
    ``error:`` line and returns 2.
    """
    from scalelab.cli.main import run_commands

    return run_commands(argv, register)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
