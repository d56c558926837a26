"""``scalelab wandb push|pull|import-offline``: move runs and fits between the store and W&B.

Imports only the standard library at import time; wandb is loaded when a subcommand runs (and a
missing wandb is one ``error:`` line naming the install command).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "register"]

DESCRIPTION = """\
Weights & Biases for a run store. `push` uploads stored runs (config, history) and fits
(parameters, fitted and extrapolated curves as tables and an image); pushing again sends only
what W&B does not have. `pull` copies W&B runs (config, full history) into a store so
`scalelab fit` works on runs logged by any tool. `import-offline` reads runs logged with
WANDB_MODE=offline into a store without a server.
"""

EPILOG = """\
examples:
  scalelab wandb push runs/ --project scaling --entity my-team --fit fit.json
  scalelab wandb pull my-team/scaling --filter config.model.size=tiny -o pulled/
  scalelab wandb pull my-team/scaling --filter '{"state": "finished"}' -o pulled/
  scalelab wandb import-offline $WANDB_DIR -o runs/
  scalelab runs pulled/ --export pulled.csv && scalelab fit pulled.csv --law power_law ...
The API key comes from WANDB_API_KEY or `wandb login`; WANDB_BASE_URL selects a server.
"""


def register(sub: Any) -> None:
    """Add the ``wandb`` command (and its subcommands) to an argparse subparsers object."""
    p = sub.add_parser("wandb", help="push runs and fits to W&B, pull W&B runs into a store",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    wsub = p.add_subparsers(dest="wandb_command", metavar="SUBCOMMAND", parser_class=type(p))

    push = wsub.add_parser("push", help="upload stored runs and fits (idempotent)",
                           description="Upload the runs of a store, and fits, to a W&B project.")
    push.add_argument("root", metavar="ROOT", help="the run store")
    push.add_argument("--project", required=True, help="W&B project")
    push.add_argument("--entity", help="W&B entity (default: the API key's)")
    push.add_argument("--run", action="append", metavar="RUN_ID", dest="runs",
                      help="push only this run (repeatable; default: every run)")
    push.add_argument("--fit", action="append", metavar="FIT.json", dest="fits", default=[],
                      help="also push this fit (`scalelab fit --json` output; repeatable)")
    push.add_argument("--no-runs", action="store_true", help="push only the --fit files")
    push.set_defaults(handler=run_push)

    pull = wsub.add_parser("pull", help="copy W&B runs (config, full history) into a store",
                           description="Copy the runs of ENTITY/PROJECT into a run store.")
    pull.add_argument("path", metavar="ENTITY/PROJECT")
    pull.add_argument("-o", "--out", required=True, metavar="ROOT", help="run store to write (created if absent)")
    pull.add_argument("--filter", action="append", default=[], metavar="FILTER", dest="filters",
                      help="KEY=VALUE or a W&B JSON filter, applied by the server (repeatable: all must hold)")
    pull.add_argument("--step-key", default="_step", help="history key of the step (default _step)")
    pull.add_argument("--tokens-key", default="tokens", help="history key of tokens seen (default tokens)")
    pull.add_argument("--flops-key", default="flops", help="history key of training FLOPs (default flops)")
    pull.add_argument("--examples-key", default="examples", help="history key of examples seen (default examples)")
    pull.add_argument("--timeout", type=float, default=30.0, help="seconds per API request (default 30)")
    pull.set_defaults(handler=run_pull)

    off = wsub.add_parser("import-offline", help="read offline W&B runs into a store (no server)",
                          description="Read runs logged with WANDB_MODE=offline into a run store.")
    off.add_argument("paths", nargs="+", metavar="PATH",
                     help="offline-run-* folders, run-*.wandb files, or the WANDB_DIR holding them")
    off.add_argument("-o", "--out", required=True, metavar="ROOT", help="run store to write (created if absent)")
    off.add_argument("--step-key", default="_step", help="history key of the step (default _step)")
    off.add_argument("--tokens-key", default="tokens", help="history key of tokens seen (default tokens)")
    off.add_argument("--flops-key", default="flops", help="history key of training FLOPs (default flops)")
    off.add_argument("--examples-key", default="examples", help="history key of examples seen (default examples)")
    off.set_defaults(handler=run_import_offline)
    p.set_defaults(handler=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _keys(args: argparse.Namespace) -> Any:
    from scalelab.tracking.records import RowKeys

    return RowKeys(step=args.step_key, examples=args.examples_key, tokens=args.tokens_key, flops=args.flops_key)


def run_push(args: argparse.Namespace) -> int:
    """Handler of ``scalelab wandb push``."""
    from scalelab.errors import DataError
    from scalelab.tracking.push import push_fit, push_store

    if args.no_runs and not args.fits:
        raise DataError("--no-runs with no --fit: nothing to push; give --fit FIT.json")
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    target = f"{args.entity}/{args.project}" if args.entity else args.project
    runs: tuple[tuple[str, str, int], ...] = ()
    if not args.no_runs:
        runs = push_store(args.root, project=args.project, entity=args.entity, run_ids=args.runs,
                          progress=say).runs
    fits = [push_fit(f, project=args.project, entity=args.entity) for f in args.fits]
    sent = sum(r[2] for r in runs)
    new_fits = sum(f[2] for f in fits)
    print(f"pushed to W&B {target}: {len(runs)} runs ({sent} new steps), {len(fits)} fits ({new_fits} new)")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    """Handler of ``scalelab wandb pull``."""
    from scalelab.tracking.pull import parse_filters, pull_runs

    filters = parse_filters(args.filters)
    summary = pull_runs(args.path, args.out, filters=filters, keys=_keys(args), timeout=args.timeout,
                        progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"pulled {len(summary.runs)} runs from W&B {summary.path} into {args.out} "
          f"({summary.appended} new records); list them with `scalelab runs {args.out}`")
    return 0


def run_import_offline(args: argparse.Namespace) -> int:
    """Handler of ``scalelab wandb import-offline``."""
    from scalelab.tracking.offline import import_offline

    summary = import_offline(args.paths, args.out, keys=_keys(args))
    for run_id, wid, n in summary.runs:
        print(f"{run_id}: {n} new records from offline W&B run {wid}", file=sys.stderr)
    total = sum(n for _, _, n in summary.runs)
    print(f"imported {len(summary.runs)} offline runs into {args.out} ({total} new records)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scalelab wandb ...`` alone (``argv`` starts with ``"wandb"``); returns the exit code.

    Errors are handled as in :func:`scalelab.cli.main.main`: a :class:`ScalelabError` prints
    one ``error: ...`` line on stderr and returns 2.
    """
    from scalelab.cli.main import run_commands

    return run_commands(argv, register)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
