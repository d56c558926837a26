"""Configs and record comparisons shared by the ensemble trainer's tests."""

from __future__ import annotations

import copy
import math
from typing import Any

from scalelab.harness.config import RunConfig

#: A tiny run of two sources; members change seeds, mixture and optimiser settings.
BASE: dict[str, Any] = {
    "steps": 24,
    "checkpoint_every": 8,
    "device": "cpu",
    "model": {"size": "tiny"},
    "optim": {"lr": 3e-3, "warmup_steps": 3},
    "eval": {"count": 7, "max_examples": 32},
    "data": {
        "seq_len": 12,
        "batch_size": 16,
        "sources": {"modadd": {"kind": "modular", "options": {"p": 7, "train_fraction": 0.8}},
                    "prose": {"kind": "text", "options": {"domain": "python_prose", "eval_size": 8}}},
        "schedule": {"mixture": {"modadd": 3, "prose": 1}},
    },
}


def make_config(**changes: Any) -> RunConfig:
    """BASE with top-level keys replaced; ``mixture=`` and ``optim=`` update those tables."""
    d = copy.deepcopy(BASE)
    mixture = changes.pop("mixture", None)
    if mixture is not None:
        d["data"]["schedule"] = {"mixture": mixture}
    d["optim"].update(changes.pop("optim", {}))
    d.update(changes)
    return RunConfig.from_dict(d)


def members() -> list[RunConfig]:
    """Four members that differ in init seed, data seed, mixture and optimiser settings."""
    return [
        make_config(init_seed=0, data_seed=0),
        make_config(init_seed=1, data_seed=5),
        make_config(init_seed=2, data_seed=0, mixture={"modadd": 1, "prose": 3}),
        make_config(init_seed=3, data_seed=1,
                    optim={"lr": 1e-2, "weight_decay": 0.0, "betas": [0.8, 0.99], "eps": 1e-6,
                           "grad_clip": 0.0, "warmup_steps": 0, "min_lr_ratio": 0.5}),
    ]


def without_clock(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record, with the wall-clock tokens/s value blanked (its presence still compared)."""
    return [{**r, "value": None} if r["metric"] == "tokens_per_s" else r for r in records]


def assert_close_records(got: list[dict[str, Any]], expected: list[dict[str, Any]], rel: float) -> float:
    """Same records in the same order (steps, counters, keys); values within ``rel``. Returns
    the largest relative difference seen."""
    assert len(got) == len(expected)
    worst = 0.0
    for g, e in zip(without_clock(got), without_clock(expected), strict=True):
        assert {k: v for k, v in g.items() if k != "value"} == {k: v for k, v in e.items() if k != "value"}
        a, b = g["value"], e["value"]
        if a is None or b is None or math.isnan(b):
            assert a == b or (a is not None and b is not None and math.isnan(a)), (g, e)
            continue
        diff = abs(a - b) / max(abs(b), 1e-12)
        assert diff <= rel, (g, e, diff)
        worst = max(worst, diff)
    return worst
