"""Held-out and train accuracy of finished grokking runs, split by whether ``a + b`` wraps past p.

Loads each run's final checkpoint from a run store and scores every pair (not just the capped
eval sets), separately for pairs with ``a + b < p`` (the answer is plain decimal addition) and
``a + b >= p`` (the sum wraps around). Uses the harness's public pieces only.

    python experiments/grokking/split_by_wrap.py runs/grokking
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from scalelab.harness.config import RunConfig
from scalelab.harness.sources import make_source
from scalelab.harness.trainer import build_model
from scalelab.harness.vocab import VOCAB_SIZE, decode


def score(model: torch.nn.Module, batch, p: int) -> dict[str, tuple[float, int]]:
    tok = torch.as_tensor(batch.tokens)
    answer = torch.as_tensor(batch.answer_mask if batch.answer_mask is not None else batch.loss_mask)
    with torch.no_grad():
        pred = model(tok[:, :-1]).argmax(-1)
    right = ((pred == tok[:, 1:]) | ~answer).all(1)
    wrap = []
    for row in batch.tokens:
        a, rest = decode(row).split("+", 1)
        wrap.append(int(a) + int(rest.split("=", 1)[0]) >= p)
    w = torch.tensor(wrap)
    return {"all": (right.float().mean().item(), len(w)),
            "a+b<p": (right[~w].float().mean().item(), int((~w).sum())),
            "a+b>=p": (right[w].float().mean().item(), int(w.sum()))}


def main(root: str) -> int:
    torch.set_num_threads(1)
    for run in sorted(d for d in Path(root).iterdir() if (d / "checkpoint.pt").exists()):
        state = torch.load(run / "checkpoint.pt", weights_only=True)
        config = RunConfig.from_dict(json.loads((run / "config.json").read_text())["config"])
        model = build_model(config, VOCAB_SIZE)
        model.load_state_dict(state["model"])
        model.eval()
        for name, spec in config.data.sources.items():
            if spec.kind != "modular":
                continue
            opts = {**dict(spec.options), "eval_size": None, "train_eval_size": 10**6}
            source = make_source(spec.kind, name=name, **opts)
            sets = source.eval_sets(config.data.seq_len)
            for label, key in (("held-out", name), ("train", f"{name}/train")):
                parts = score(model, sets[key], int(opts["p"]))
                text = ", ".join(f"{k} {v:.3f} (n={n})" for k, (v, n) in parts.items())
                print(f"{run.name} step {state['step']} {label}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runs/grokking"))
