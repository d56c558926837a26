"""Benchmark the training harness against a bare torch loop on the same model and batch shape.

``bare``: the model, AdamW param groups, warmup + cosine schedule, gradient clipping and the
masked fp32 loss of the harness, stepping on one pre-built batch that is already a tensor (no
data pipeline, no logging, no store).

``harness``: :func:`scalelab.harness.trainer.train` on the same config, writing to a run store:
batches drawn from the data stream every step, per-source online losses, records, eval sets at
the first and last step, and checkpoints. Two figures:

* ``loop`` -- tokens over the time spent inside training steps (what the trainer logs as
  ``tokens_per_s``: batch generation, forward, backward, update and per-step records);
* ``end_to_end`` -- tokens over the wall time of the whole ``train()`` call, including model
  construction, the two evaluations, metric flushes and checkpoints.

The issue's target is at most 5% overhead of ``loop`` against ``bare``. Runs alternate
(bare, harness, bare, ...) so load from other processes hits both alike; medians are reported.

Writes bench-results/harness.json and prints a table. Run:
``python benchmarks/bench_harness.py [--sizes tiny,small] [--steps 200] [--repeats 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from scalelab.harness.config import RunConfig
from scalelab.harness.evaluation import token_losses
from scalelab.harness.model import count_params
from scalelab.harness.trainer import build_data, build_model, build_optimizer, train
from scalelab.harness.vocab import VOCAB_SIZE
from scalelab.store.runs import RunStore


def make_config(size: str, steps: int, batch: int, seq_len: int) -> RunConfig:
    return RunConfig.from_dict({
        "steps": steps,
        "device": "cpu",
        "checkpoint_every": max(1, steps // 2),
        "model": {"size": size},
        "optim": {"lr": 1e-3, "warmup_steps": min(10, steps)},
        "eval": {"count": 2, "max_examples": 64},
        "data": {
            "seq_len": seq_len,
            "batch_size": batch,
            "sources": {"code": {"kind": "text", "options": {"domain": "python_code", "eval_size": 16}}},
        },
    })


def bare_loop(config: RunConfig, warmup: int) -> float:
    """Tokens/s of a plain training loop over one fixed batch (after ``warmup`` steps)."""
    torch.manual_seed(config.init_seed)
    model = build_model(config, VOCAB_SIZE)
    opt, sched = build_optimizer(model, config)
    batch, _ = build_data(config).batch(0, config.data.batch_size, config.data.seq_len)
    tokens = torch.from_numpy(batch.tokens)  # (B, T)
    mask = torch.from_numpy(batch.loss_mask)  # (B, T-1)
    x, y = tokens[:, :-1], tokens[:, 1:]  # (B, T-1)
    model.train()
    t0 = 0.0
    for step in range(config.steps):
        if step == warmup:
            t0 = time.perf_counter()
        ce = token_losses(model(x), y)  # (B, T-1)
        loss = (ce * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        opt.step()
        sched.step()
        loss.item()
    seconds = time.perf_counter() - t0
    return (config.steps - warmup) * x.numel() / seconds


def harness_run(config: RunConfig, warmup: int) -> dict[str, float]:
    """Tokens/s of ``train()``: inside the step loop (after ``warmup`` steps) and end to end."""
    with tempfile.TemporaryDirectory() as root:
        run = RunStore(root).run("bench")
        t0 = time.perf_counter()
        summary = train(config, run)
        wall = time.perf_counter() - t0
        records = run.read_metrics()
    positions = config.data.batch_size * (config.data.seq_len - 1)
    windows = sorted((r["step"], r["value"]) for r in records if r["metric"] == "tokens_per_s")
    # Loop time after warm-up from the logged windows: tokens / (tokens/s) per window.
    prev, tokens, seconds = 0, 0, 0.0
    for step, tps in windows:
        n = (step - prev) * positions
        if prev >= warmup:
            tokens += n
            seconds += n / tps
        prev = step
    return {"loop": tokens / seconds, "end_to_end": summary.tokens / wall, "wall_seconds": wall}


def bench(size: str, args: argparse.Namespace) -> dict[str, Any]:
    """Alternate bare and harness runs of one model size; medians and every run."""
    config = make_config(size, args.steps, args.batch, args.seq_len)
    warmup = max(1, args.steps // 2)  # the first checkpoint; windows after it are all steady state
    params, non_embedding = count_params(build_model(config, VOCAB_SIZE))
    bare, loop, e2e = [], [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(config, warmup))
        h = harness_run(config, warmup)
        loop.append(h["loop"])
        e2e.append(h["end_to_end"])
    b, lp, ee = statistics.median(bare), statistics.median(loop), statistics.median(e2e)
    return {
        "size": size, "params": params, "non_embedding_params": non_embedding,
        "tokens_per_s": {"bare": b, "harness_loop": lp, "harness_end_to_end": ee,
                         "bare_runs": bare, "harness_loop_runs": loop, "harness_end_to_end_runs": e2e},
        "overhead_loop": 1 - lp / b,
        "overhead_end_to_end": 1 - ee / b,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="tiny,small", help="comma-separated rungs of SIZE_LADDER")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench-results/harness.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = [bench(size, args) for size in args.sizes.split(",")]
    payload: dict[str, Any] = {
        "setting": {"batch_size": args.batch, "seq_len": args.seq_len, "steps": args.steps,
                    "timed_steps": args.steps - max(1, args.steps // 2), "repeats": args.repeats,
                    "torch_threads": args.threads, "device": "cpu", "torch": torch.__version__,
                    "python": platform.python_version(), "machine": platform.machine(),
                    "source": "text/python_code"},
        "target_overhead": 0.05,
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    st = payload["setting"]
    print(f"batch {args.batch} x {args.seq_len - 1} positions, {args.steps} steps ({st['timed_steps']} timed), "
          f"{args.threads} thread(s), CPU, median of {args.repeats}")
    print(f"{'model':>8}{'non-emb':>11}{'bare tok/s':>13}{'harness loop':>14}{'overhead':>10}{'end to end':>12}{'overhead':>10}")
    for r in results:
        t = r["tokens_per_s"]
        print(f"{r['size']:>8}{r['non_embedding_params']:>11,}{t['bare']:>13,.0f}{t['harness_loop']:>14,.0f}"
              f"{r['overhead_loop']:>10.1%}{t['harness_end_to_end']:>12,.0f}{r['overhead_end_to_end']:>10.1%}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
