"""``scalelab train CONFIG.toml --store ROOT``: train (or resume) one run into a run store.

Under ``torchrun --nproc_per_node N -m scalelab train ...`` the run is trained data-parallel on
``N`` processes (see :mod:`scalelab.harness.distributed`): rank 0 alone writes the store and
prints progress, the summary and errors; the other ranks print nothing and exit with the same
code (an error they share with rank 0, e.g. a bad config, is reported once).

Imports only the standard library at import time; torch is loaded when the command runs.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "register", "run_train"]

EXAMPLES = """\
examples:
  scalelab train experiments/modadd.toml --store runs/
  scalelab train run.toml --store runs/ --run-id tiny-s0 --device cpu --threads 1
  torchrun --standalone --nproc_per_node 2 -m scalelab train run.toml --store runs/
  scalelab train run.toml --store runs/ --wandb my-team/scaling   # also log live to W&B
Running the same command again resumes the run from its last checkpoint (or does nothing
when it has finished). Metrics go to ROOT/RUN_ID/metrics.jsonl; list runs with `scalelab runs ROOT`.
"""


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "train",
        help="train one run from a TOML config into a run store (resumes if interrupted)",
        description="Train one run: metrics, checkpoints and status are written to the store; "
        "rerunning the command resumes from the last checkpoint.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="CONFIG", help="run config (.toml or .json; see docs/harness.md)")
    p.add_argument("--store", required=True, metavar="ROOT", help="run store folder (created if absent)")
    p.add_argument("--run-id", metavar="ID", help="run id (default: the config file's name without suffix)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the config's device")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="print only the final summary and errors")
    p.add_argument("--wandb", metavar="[ENTITY/]PROJECT",
                   help="also log the run live to W&B (online with a key and network, else offline; "
                   "see docs/wandb.md)")
    p.set_defaults(handler=run_train)
    return p


def _rank() -> int:
    """This process's torchrun rank (0 outside torchrun or for a malformed value)."""
    import os

    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``scalelab train``; returns the exit code.

    Under torchrun, ranks other than 0 return 2 on a :class:`~scalelab.errors.ScalelabError`
    without printing it (rank 0 prints it).
    """
    from scalelab.errors import ScalelabError

    if _rank() == 0:
        return _run_train(args)
    try:
        return _run_train(args)
    except ScalelabError:
        return 2


def _run_train(args: argparse.Namespace) -> int:
    from scalelab.errors import DataError
    from scalelab.harness.config import load_config

    config = load_config(args.config)  # every config error surfaces before torch is imported
    if args.device:
        config = config.with_device(args.device)
    if args.threads is not None and args.threads < 1:
        raise DataError(f"--threads must be at least 1, got {args.threads}")
    run_id = args.run_id or Path(args.config).stem
    if args.wandb:
        config = _with_wandb(config, args.wandb)

    import torch

    from scalelab.harness import distributed
    from scalelab.harness.trainer import Progress, train
    from scalelab.store.runs import RunHandle, RunStore

    launch = distributed.current_launch()
    if launch is not None:  # before the store is created
        distributed.check_batch_size(config.data.batch_size, launch.world_size)
    main = launch is None or launch.is_main
    if args.threads:
        torch.set_num_threads(args.threads)
    # Ranks other than 0 never touch the store: their handle is not even created on disk.
    run = RunStore(args.store).run(run_id) if main else RunHandle(args.store, run_id)

    def show(p: Progress) -> None:
        if not p.eval:
            return
        skills = "  ".join(
            f"{skill} " + " ".join(f"{m} {v:.4g}" for m, v in metrics.items()) for skill, metrics in p.eval.items()
        )
        speed = f"  {p.tokens_per_s:,.0f} tok/s" if p.tokens_per_s else ""
        online = "" if math.isnan(p.online_loss) else f"online_loss {p.online_loss:.4f}  "
        print(f"step {p.step:>6}/{p.steps}  {online}{skills}{speed}", flush=True)

    if launch is None:
        with run.lock():
            summary = train(config, run, progress=None if args.quiet else show)
    else:  # rank 0 takes the lock inside train and tells the other ranks if it cannot
        summary = train(config, run, progress=None if args.quiet or not main else show)
        if not main:
            return 0
    if summary.resumed_from == summary.steps:
        print(f"run {run_id}: already finished at step {summary.steps}; nothing to do (store {args.store})")
        return 0
    ranks = f" x {summary.world_size} processes" if summary.world_size > 1 else ""
    resumed = f", resumed from step {summary.resumed_from}" if summary.resumed_from is not None else ""
    print(
        f"run {run_id}: {'finished' if summary.finished else 'stopped'} at step {summary.step}/{summary.steps}"
        f"{resumed}; {summary.non_embedding_params:,} non-embedding params, {summary.tokens:,} tokens, "
        f"{summary.flops:.3g} FLOPs, {summary.tokens_per_s:,.0f} tok/s on {summary.device}{ranks} "
        f"({summary.seconds:.1f} s); store {args.store}"
    )
    return 0


def _with_wandb(config: Any, target: str) -> Any:
    """``config`` logging live to W&B ``target`` (the config's other W&B settings are kept)."""
    import dataclasses

    from scalelab.harness.config import TrackingConfig, WandbConfig
    from scalelab.tracking._wandb import import_wandb
    from scalelab.tracking.live import parse_target

    entity, project = parse_target(target)
    import_wandb()  # a missing package fails here, before anything is trained
    old = config.tracking.wandb if config.tracking is not None else None
    spec = dataclasses.replace(old, project=project, entity=entity or old.entity) if old else \
        WandbConfig(project=project, entity=entity)
    return dataclasses.replace(config, tracking=TrackingConfig(wandb=spec))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scalelab train`` with ``argv`` (the arguments after ``train``); returns the exit code.

    Errors are handled as by :func:`scalelab.cli.main.main`: a one-line ``error:`` message on
    stderr and exit code 2 for user errors, 130 on Ctrl-C.
    """
    from scalelab.cli.main import run_commands

    return run_commands(["train", *(sys.argv[1:] if argv is None else argv)], register)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
