"""``scalelab grid FILE``: expand a grid of runs and run it (resumable)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "grid",
        help="run a grid of training runs declared in TOML (skips finished runs, resumes interrupted ones)",
        description="Expand the grid's axes into runs with stable ids and run them into the store. "
        "Rerunning the same command resumes: finished runs are skipped, interrupted ones continue "
        "from their last checkpoint.",
    )
    p.add_argument("file", metavar="FILE", help="grid file (.toml)")
    p.add_argument("--store", required=True, metavar="ROOT", help="run store directory (created if absent)")
    p.add_argument("--executor", default="local", choices=["local", "ray", "slurm"])
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--ensemble", nargs="?", type=int, const=True, default=False, metavar="K",
                   help="train cells that share the architecture together as batched ensembles of up "
                   "to K runs (default 8), one ensemble per worker; faster only for small per-model "
                   "work on CPU, see docs/ensemble.md")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per local run (default 1)")
    p.add_argument("--device", help="override every run's device (cpu, cuda)")
    p.add_argument("--ray-address", help="Ray cluster address (default: start a local instance)")
    p.add_argument("--slurm-folder", default="slurm-logs", help="submitit log folder")
    p.add_argument("--slurm-cluster", help="submitit cluster: slurm (default when available), local, debug")
    p.add_argument("--slurm-partition", help="SLURM partition")
    p.add_argument("--only", nargs="+", metavar="RUN_ID", help="run only these cells")
    p.add_argument("--list", action="store_true", help="list the runs and their ids, run nothing")
    p.add_argument("--wandb", metavar="[ENTITY/]PROJECT",
                   help="also log every run live to W&B (sets $SCALELAB_WANDB for the workers; "
                   "see docs/wandb.md)")
    p.set_defaults(handler=run_grid_command)


@contextlib.contextmanager
def _wandb_env(target: str | None) -> Iterator[None]:
    """Set ``$SCALELAB_WANDB`` while the grid runs (workers inherit it), then restore it."""
    if not target:
        yield
        return
    from scalelab.tracking._wandb import import_wandb
    from scalelab.tracking.live import ENV_VAR, parse_target

    parse_target(target)  # a bad target fails before any run starts
    import_wandb()
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = target
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before


def run_grid_command(args: argparse.Namespace) -> int:
    from scalelab.harness.executors import make_executor, run_grid
    from scalelab.harness.grid import load_grid, select

    grid = load_grid(args.file)
    runs = select(grid.runs(), args.only)
    if args.list:
        for r in runs:
            labels = ", ".join(f"{k}={v}" for k, v in r.labels.items())
            print(f"{r.run_id}  ({labels})")
        return 0
    options: dict[str, Any] = {}
    if args.executor == "ray":
        options["address"] = args.ray_address
    elif args.executor == "slurm":
        options["folder"] = args.slurm_folder
        options["cluster"] = args.slurm_cluster
        if args.slurm_partition:
            options["slurm_partition"] = args.slurm_partition
    if args.executor == "local":
        options["threads"] = args.threads
    executor = make_executor(args.executor, workers=args.workers, device=args.device, **options)
    with _wandb_env(args.wandb):
        summary = run_grid(runs, args.store, executor, ensemble=args.ensemble,
                           progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(
        f"grid {grid.name}: {summary.count('finished')} finished, {summary.count('skipped')} already done, "
        f"{summary.count('failed')} failed; store: {args.store}"
    )
    for o in summary.outcomes:
        if o.status == "failed":
            first = o.error.strip().splitlines()[-1] if o.error else ""
            print(f"  failed {o.run_id}: {first}", file=sys.stderr)
    return 0 if summary.ok else 1
