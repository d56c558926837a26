"""Benchmark the batched ensemble trainer against training the same grid cells one after another.

The cells: K runs of one model size (default 8: 4 mixtures of Python code and modular addition
x 2 seeds), each ``steps`` updates with the harness's evaluation (8 log-spaced evals of 64
examples per eval set) and two checkpoints, as a grid would run them.

* ``sequential`` -- :func:`scalelab.harness.trainer.train` on every cell in turn, in one process
  (what ``scalelab grid`` does with one worker);
* ``ensemble`` -- :func:`scalelab.harness.ensemble.train_ensemble` on all K cells at once.

Both write to a fresh run store. Reported per setting: wall-clock seconds end to end, process CPU
seconds (which the other processes on a shared machine disturb less than the wall clock), the
tokens per second of the training steps alone (what the trainers log as ``tokens_per_s``,
evaluation excluded, summed over the cells), and the speedups of the ensemble. Runs alternate
(sequential, ensemble, sequential, ...) after one untimed warm-up of each, so load from other
processes hits both alike; medians and the spread (min-max) are reported with the machine's load
average before and after.

``--forward`` adds the choices of the batched forward pass: CPU time of one forward + backward
step of K members as K separate models, as the hand-batched pass the ensemble uses
(``torch.baddbmm`` over stacked weights, output layer and loss per member), as ``torch.func.vmap``
over ``functional_call`` of the stacked modules, with all members' logits at once, and with
attention written out (``baddbmm`` + softmax + ``bmm``); and the shares of attention and matrix
products in the separate models' step (``torch.profiler``). ``--agreement`` trains four ``tiny``
members one after another and as an ensemble, and reports the largest differences of their
records and final parameters beside those that two threads instead of one cause in sequential
training. ``--no-grid`` skips the grid timings.

Writes bench-results/ensemble.json and bench-results/ensemble.md and prints the table. Run:
``python benchmarks/bench_ensemble.py [--sizes tiny,small] [--shapes 64x32,32x32] [--members 8]
[--steps 60] [--repeats 3] [--threads 1,2] [--forward]`` (``--render FILE.json`` rewrites the
table of an earlier run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from scalelab.harness.config import RunConfig
from scalelab.harness.ensemble import train_ensemble
from scalelab.harness.evaluation import token_losses
from scalelab.harness.model import count_params
from scalelab.harness.trainer import build_data, build_model, train
from scalelab.store.runs import RunStore

CODE_SHARES = (0.25, 0.5, 0.75, 0.9)  # fraction of rows from Python code (the rest: modular addition)


def make_configs(size: str, members: int, steps: int, seq_len: int, batch: int) -> list[RunConfig]:
    """``members`` cells: mixtures x seeds (cycling through CODE_SHARES, then the next seed)."""
    out = []
    for i in range(members):
        share = CODE_SHARES[i % len(CODE_SHARES)]
        seed = i // len(CODE_SHARES)
        out.append(RunConfig.from_dict({
            "steps": steps,
            "device": "cpu",
            "init_seed": seed,
            "data_seed": seed,
            "checkpoint_every": max(1, steps // 2),
            "model": {"size": size},
            "optim": {"lr": 1e-3, "warmup_steps": min(10, steps)},
            "eval": {"count": 8, "max_examples": 64},
            "data": {
                "seq_len": seq_len,
                "batch_size": batch,
                "sources": {"code": {"kind": "text", "options": {"domain": "python_code"}},
                            "modadd": {"kind": "modular", "options": {"p": 97, "op": "+"}}},
                "schedule": {"mixture": {"code": share, "modadd": 1 - share}},
            },
        }))
    return out


def _loop_seconds(summaries: list[Any]) -> float:
    """Seconds inside training steps: each summary's tokens over its logged tokens/s."""
    return sum(s.tokens / s.tokens_per_s for s in summaries)


def run_sequential(configs: list[RunConfig]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as root:
        store = RunStore(root)
        t0, c0 = time.perf_counter(), time.process_time()
        summaries = [train(c, store.run(f"cell{i}")) for i, c in enumerate(configs)]
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    tokens = sum(s.tokens for s in summaries)
    return {"wall_s": wall, "cpu_s": cpu, "loop_tokens_per_s": tokens / _loop_seconds(summaries)}


def run_ensemble(configs: list[RunConfig]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as root:
        store = RunStore(root)
        t0, c0 = time.perf_counter(), time.process_time()
        summaries = train_ensemble(configs, [store.run(f"cell{i}") for i in range(len(configs))])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    tokens = sum(s.tokens for s in summaries)
    loop = summaries[0].tokens / summaries[0].tokens_per_s  # one clock for all members
    return {"wall_s": wall, "cpu_s": cpu, "loop_tokens_per_s": tokens / loop}


def _stats(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def bench_setting(size: str, seq_len: int, batch: int, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    """Alternate sequential and ensemble runs of one setting; medians, spreads and every run."""
    torch.set_num_threads(threads)
    configs = make_configs(size, args.members, args.steps, seq_len, batch)
    warm = make_configs(size, 2, 4, seq_len, batch)
    run_sequential(warm[:1])
    run_ensemble(warm)
    load_before = os.getloadavg()
    seq: list[dict[str, float]] = []
    ens: list[dict[str, float]] = []
    for _ in range(args.repeats):
        seq.append(run_sequential(configs))
        ens.append(run_ensemble(configs))
    load_after = os.getloadavg()
    params, non_embedding = count_params(build_model(configs[0], build_data(configs[0]).vocab_size))
    out: dict[str, Any] = {
        "size": size, "params": params, "non_embedding_params": non_embedding, "seq_len": seq_len,
        "batch_size": batch, "torch_threads": threads, "members": args.members, "steps": args.steps,
        "load_avg_1min": [load_before[0], load_after[0]],
    }
    for key in ("wall_s", "cpu_s", "loop_tokens_per_s"):
        out[f"sequential_{key}"] = _stats([r[key] for r in seq])
        out[f"ensemble_{key}"] = _stats([r[key] for r in ens])
    # speedups of each alternating pair, so a load spike hits one pair, not the median of one side
    out["speedup_wall"] = _stats([s["wall_s"] / e["wall_s"] for s, e in zip(seq, ens, strict=True)])
    out["speedup_cpu"] = _stats([s["cpu_s"] / e["cpu_s"] for s, e in zip(seq, ens, strict=True)])
    out["speedup_loop"] = _stats([e["loop_tokens_per_s"] / s["loop_tokens_per_s"] for s, e in zip(seq, ens, strict=True)])
    return _derived(out)


def _derived(r: dict[str, Any]) -> dict[str, Any]:
    """Cell-steps (one cell's training step) per second end to end, from the median wall times."""
    cell_steps = r["members"] * r["steps"]
    r["sequential_cell_steps_per_s"] = cell_steps / r["sequential_wall_s"]["median"]
    r["ensemble_cell_steps_per_s"] = cell_steps / r["ensemble_wall_s"]["median"]
    return r


def bench_forward(size: str, seq_len: int, batch: int, members: int, repeats: int = 7) -> dict[str, Any]:
    """CPU milliseconds of one forward + backward step of ``members`` models, three ways."""
    from torch.func import functional_call, stack_module_state, vmap

    from scalelab.harness._stacked_gpt import StackedGPT

    torch.set_num_threads(1)
    configs = make_configs(size, members, 10, seq_len, batch)
    streams = [build_data(c) for c in configs]
    models = [build_model(c, streams[0].vocab_size) for c in configs]
    batches = [s.batch(0, batch, seq_len)[0] for s in streams]
    tokens = torch.stack([torch.from_numpy(b.tokens) for b in batches])  # (K, B, T)
    mask = torch.stack([torch.from_numpy(b.loss_mask) for b in batches])  # (K, B, T-1)
    x, y = tokens[:, :, :-1], tokens[:, :, 1:]
    stack = StackedGPT(models)

    def hand() -> None:  # what the ensemble does: batched trunk, output layer and loss per member
        hidden = stack.hidden(stack.params, x)
        ce = torch.stack([token_losses(stack.head(stack.params, hidden, k).view(batch, seq_len - 1, -1), y[k])
                          for k in range(members)])
        stack.backward(((ce * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))).sum())

    def joint_head() -> None:  # variant: all members' logits at once, one loss call
        hidden = stack.hidden(stack.params, x)  # (K, N, C)
        logits = torch.bmm(hidden, stack.params["wte.weight"].transpose(1, 2))  # (K, N, V)
        ce = token_losses(logits.view(members * batch, seq_len - 1, -1), y.reshape(members * batch, -1))
        ce = ce.view(members, batch, seq_len - 1)
        stack.backward(((ce * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))).sum())

    causal = torch.full((seq_len - 1, seq_len - 1), float("-inf")).triu(1)  # (T, T) additive mask

    def written_out(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = True) -> torch.Tensor:
        b, h, t, d = q.shape  # attention as baddbmm + softmax + bmm
        att = torch.baddbmm(causal[:t, :t], q.reshape(b * h, t, d), k.reshape(b * h, t, d).transpose(1, 2),
                            alpha=d**-0.5).softmax(dim=-1)
        return torch.bmm(att, v.reshape(b * h, t, d)).view(b, h, t, d)

    def math_attention() -> None:  # variant: the hand-batched step with attention written out
        import torch.nn.functional as F

        flash = F.scaled_dot_product_attention
        F.scaled_dot_product_attention = written_out  # type: ignore[assignment]
        try:
            hand()
        finally:
            F.scaled_dot_product_attention = flash

    params, buffers = stack_module_state(models)  # type: ignore[arg-type]
    for p in params.values():
        p.requires_grad_(True)
    base = models[0]

    def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xx: torch.Tensor, yy: torch.Tensor,
            mm: torch.Tensor) -> torch.Tensor:
        ce = token_losses(functional_call(base, (p, b), (xx,)), yy)
        return (ce * mm).sum() / mm.sum()

    def vmapped() -> None:
        loss = vmap(one)(params, buffers, x, y, mask).sum()
        torch.autograd.grad(loss, list(params.values()))

    def separate() -> None:
        for k, m in enumerate(models):
            ce = token_losses(m(x[k]), y[k])
            loss = (ce * mask[k]).sum() / mask[k].sum()
            m.zero_grad(set_to_none=True)
            loss.backward()

    def cpu_ms(fn: Any) -> dict[str, Any]:
        fn()
        times = []
        for _ in range(repeats):
            c0 = time.process_time()
            fn()
            times.append((time.process_time() - c0) * 1e3)
        return _stats(times)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vmap's "no batching rule for flash attention" warning
        out = {"separate_ms": cpu_ms(separate), "hand_batched_ms": cpu_ms(hand), "vmap_ms": cpu_ms(vmapped),
               "joint_head_ms": cpu_ms(joint_head), "written_out_attention_ms": cpu_ms(math_attention)}
    return {"size": size, "seq_len": seq_len, "batch_size": batch, "members": members, **out,
            "separate_profile": _profile_shares(separate)}


def _profile_shares(fn: Any) -> dict[str, float]:
    """Shares of the CPU time of ``fn`` (torch.profiler, self time) in attention and matrix products."""
    from torch.profiler import profile

    fn()
    with profile() as prof:
        fn()
    rows = prof.key_averages()
    total = sum(r.self_cpu_time_total for r in rows)
    attention = sum(r.self_cpu_time_total for r in rows if "scaled_dot_product" in r.key)
    matmul = sum(r.self_cpu_time_total for r in rows if r.key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"))
    return {"attention": attention / total, "matmul": matmul / total}


def markdown(payload: dict[str, Any]) -> str:
    lines = [] if not payload["results"] else [
        f"{payload['setting']['members']} cells x {payload['setting']['steps']} steps, CPU, "
        f"median of {payload['setting']['repeats']} alternating runs (min-max in brackets)",
        "",
        "| model | non-emb params | seq x batch | threads | sequential s | ensemble s | cell-steps/s seq / ens | "
        "speedup (wall) | speedup (CPU time) | speedup (step loop) | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["results"]:
        sw, ew = r["sequential_wall_s"], r["ensemble_wall_s"]
        sp, sc, sl = r["speedup_wall"], r["speedup_cpu"], r["speedup_loop"]
        lines.append(
            f"| `{r['size']}` | {r['non_embedding_params']:,} | {r['seq_len']} x {r['batch_size']} | "
            f"{r['torch_threads']} | {sw['median']:.1f} [{sw['min']:.1f}-{sw['max']:.1f}] | "
            f"{ew['median']:.1f} [{ew['min']:.1f}-{ew['max']:.1f}] | "
            f"{r['sequential_cell_steps_per_s']:.1f} / {r['ensemble_cell_steps_per_s']:.1f} | "
            f"{sp['median']:.2f}x [{sp['min']:.2f}-{sp['max']:.2f}] | {sc['median']:.2f}x [{sc['min']:.2f}-{sc['max']:.2f}] | "
            f"{sl['median']:.2f}x [{sl['min']:.2f}-{sl['max']:.2f}] | "
            f"{r['load_avg_1min'][0]:.1f} / {r['load_avg_1min'][1]:.1f} |")
    if payload.get("forward"):
        lines += ["", "One forward + backward step of K members, CPU ms (median of 7):", "",
                  "| model | seq x batch | K | K separate models | hand-batched (bmm), used | vmap(functional_call) "
                  "| all members' logits at once | attention written out | separate: attention / matmul share |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for f in payload["forward"]:
            prof = f.get("separate_profile", {})
            lines.append(f"| `{f['size']}` | {f['seq_len']} x {f['batch_size']} | {f['members']} | "
                         f"{f['separate_ms']['median']:.0f} | {f['hand_batched_ms']['median']:.0f} | "
                         f"{f['vmap_ms']['median']:.0f} | {_ms(f, 'joint_head_ms')} | {_ms(f, 'written_out_attention_ms')} | "
                         f"{_share(prof, 'attention')} / {_share(prof, 'matmul')} |")
    if payload.get("agreement"):
        lines += ["", "Differences from sequential training with one thread (largest over the members):", "",
                  "| setting | compared | record (relative) | final parameters (relative norm) | single tensor |",
                  "|---|---|---|---|---|"]
        for a in payload["agreement"]:
            for key, label in (("ensemble", "ensemble, 1 thread"), ("two_threads", "sequential, 2 threads")):
                d = a[key]
                lines.append(f"| {a['setting']} | {label} | {d['worst_record']:.1e} | {d['params_rel_norm']:.1e} | "
                             f"{d['worst_tensor']} {d['worst_tensor_rel_norm']:.1e} |")
    return "\n".join(lines) + "\n"


def _ms(f: dict[str, Any], key: str) -> str:
    return f"{f[key]['median']:.0f}" if key in f else "-"


def _share(prof: dict[str, float], key: str) -> str:
    return f"{prof[key]:.0%}" if key in prof else "-"


def _differences(a: RunStore, b: RunStore, ids: list[str]) -> dict[str, Any]:
    """Largest relative differences between the same runs in two stores: records, final parameters
    (relative norm of the difference) and the single tensor that differs most."""
    import math

    worst_record, worst_params, worst_tensor = 0.0, 0.0, ("", 0.0)
    for i in ids:
        for x, y in zip(a.run(i).read_metrics(), b.run(i).read_metrics(), strict=True):
            if x["metric"] != "tokens_per_s" and x["value"] is not None and not math.isnan(x["value"]):
                worst_record = max(worst_record, abs(x["value"] - y["value"]) / max(abs(x["value"]), 1e-12))
        ma, mb = a.run(i).load_checkpoint()["model"], b.run(i).load_checkpoint()["model"]
        fa = torch.cat([v.reshape(-1) for v in ma.values()])
        fb = torch.cat([v.reshape(-1) for v in mb.values()])
        worst_params = max(worst_params, ((fa - fb).norm() / fa.norm()).item())
        for name in ma:
            rel = ((ma[name] - mb[name]).norm() / ma[name].norm().clamp(min=1e-12)).item()
            if rel > worst_tensor[1]:
                worst_tensor = (name, rel)
    return {"worst_record": worst_record, "params_rel_norm": worst_params, "worst_tensor": worst_tensor[0],
            "worst_tensor_rel_norm": worst_tensor[1]}


def agreement(lr: float, steps: int) -> dict[str, Any]:
    """Four ``tiny`` members (seeds, a mixture and every optimiser setting differ; the last at 3x
    the learning rate, without warmup or clipping) trained one after another with one thread, as
    an ensemble with one thread, and one after another with two threads: how far the ensemble is
    from sequential training, beside how far a change of thread count alone moves it."""
    import copy

    base: dict[str, Any] = {
        "steps": steps, "checkpoint_every": 8, "device": "cpu", "model": {"size": "tiny"},
        "optim": {"lr": lr, "warmup_steps": 3}, "eval": {"count": 7, "max_examples": 32},
        "data": {"seq_len": 12, "batch_size": 16,
                 "sources": {"modadd": {"kind": "modular", "options": {"p": 7, "train_fraction": 0.8}},
                             "prose": {"kind": "text", "options": {"domain": "python_prose", "eval_size": 8}}},
                 "schedule": {"mixture": {"modadd": 3, "prose": 1}}},
    }
    variants: list[dict[str, Any]] = [
        {"init_seed": 0, "data_seed": 0},
        {"init_seed": 1, "data_seed": 5},
        {"init_seed": 2, "data_seed": 0, "data": {**base["data"], "schedule": {"mixture": {"modadd": 1, "prose": 3}}}},
        {"init_seed": 3, "data_seed": 1, "optim": {"lr": lr * 3, "weight_decay": 0.0, "betas": [0.8, 0.99], "eps": 1e-6,
                                                    "grad_clip": 0.0, "warmup_steps": 0, "min_lr_ratio": 0.5}},
    ]
    configs = [RunConfig.from_dict({**copy.deepcopy(base), **v}) for v in variants]
    ids = [f"m{i}" for i in range(len(configs))]
    with tempfile.TemporaryDirectory() as root:
        one, two, ens = RunStore(Path(root) / "one"), RunStore(Path(root) / "two"), RunStore(Path(root) / "ens")
        torch.set_num_threads(1)
        for i, c in zip(ids, configs, strict=True):
            train(c, one.run(i))
        train_ensemble(configs, [ens.run(i) for i in ids])
        torch.set_num_threads(2)
        for i, c in zip(ids, configs, strict=True):
            train(c, two.run(i))
        torch.set_num_threads(1)
        return {"setting": f"4 tiny members, {steps} steps, lr {lr:g} (one at {3 * lr:g}), batch 16 x 12",
                "ensemble": _differences(one, ens, ids), "two_threads": _differences(one, two, ids)}


def _shape(text: str) -> tuple[int, int]:
    seq, batch = text.lower().split("x")
    return int(seq), int(batch)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="tiny,small", help="comma-separated rungs of SIZE_LADDER")
    ap.add_argument("--shapes", default="64x32,32x32", help="comma-separated SEQ_LENxBATCH (default 64x32,32x32)")
    ap.add_argument("--members", type=int, default=8, help="cells trained together (default 8)")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    ap.add_argument("--forward", action="store_true", help="also time the batched forward pass several ways")
    ap.add_argument("--agreement", action="store_true", help="also measure how close ensemble and sequential runs are")
    ap.add_argument("--no-grid", action="store_true", help="skip the sequential-against-ensemble grid timings")
    ap.add_argument("--out", default="bench-results/ensemble.json")
    ap.add_argument("--render", metavar="JSON", help="only rewrite the table of an earlier result file")
    args = ap.parse_args(argv)
    if args.render:
        path = Path(args.render)
        payload = json.loads(path.read_text())
        payload["results"] = [_derived(r) for r in payload["results"]]
        path.write_text(json.dumps(payload, indent=1) + "\n")
        path.with_suffix(".md").write_text(markdown(payload))
        print(markdown(payload))
        return
    results = []
    for threads in ([] if args.no_grid else [int(t) for t in args.threads.split(",")]):
        for size in args.sizes.split(","):
            for seq_len, batch in (_shape(s) for s in args.shapes.split(",")):
                r = bench_setting(size, seq_len, batch, threads, args)
                results.append(r)
                print(f"{size} {seq_len}x{batch} threads {threads}: sequential {r['sequential_wall_s']['median']:.1f} s, "
                      f"ensemble {r['ensemble_wall_s']['median']:.1f} s, speedup {r['speedup_wall']['median']:.2f}x wall, "
                      f"{r['speedup_cpu']['median']:.2f}x CPU time", flush=True)
    forward = []
    if args.forward:
        for size in args.sizes.split(","):
            for seq_len, batch in (_shape(s) for s in args.shapes.split(",")):
                forward.append(bench_forward(size, seq_len, batch, args.members))
    agree = [agreement(3e-3, 24), agreement(1e-2, 30)] if args.agreement else []
    payload: dict[str, Any] = {
        "setting": {"members": args.members, "steps": args.steps, "repeats": args.repeats, "device": "cpu",
                    "cells": "mixtures of text/python_code and modular addition (p=97) x seeds",
                    "eval": {"count": 8, "max_examples": 64}, "torch": torch.__version__,
                    "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "target_speedup": 3.0,
        "results": results,
        "forward": forward,
        "agreement": agree,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    table = markdown(payload)
    out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
