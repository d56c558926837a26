"""Experiment 3 (curriculum): its analysis on synthetic curves with known answers, and its grid."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from scalelab.errors import DataError
from tests.experiments._loader import load_experiment

CUR = load_experiment("curriculum/run.py", "exp_curriculum")
C = load_experiment("_common.py", "_common")
C_CROSSING = C.Crossing

STEPS = np.unique(np.round(np.geomspace(1, 1000, 40)))
STEPS = np.concatenate([[0.0], STEPS])
TOTAL, BATCH, FRACTION = 1000, 10, 0.2


def _acc(mid: float | None) -> np.ndarray:
    """Accuracy from 0.5 to 1, logistic in log step, crossing 0.9 at step ``mid`` (None: never)."""
    if mid is None:
        return np.full(STEPS.size, 0.5)
    center = math.log(mid + 1) - 0.1 * math.log(4)  # 0.5 + 0.5 s = 0.9 at s = 0.8 (logit ln 4)
    return 0.5 + 0.5 / (1 + np.exp(-(np.log(STEPS + 1) - center) / 0.1))


def _curves(mids: dict[tuple[str, str], list[float | None]]) -> dict[str, dict[str, Any]]:
    out = {}
    for (size, cond), per_seed in mids.items():
        for seed, mid in enumerate(per_seed):
            out[f"{size}-{cond}-{seed}"] = {
                "labels": {"condition": cond, "size": size, "seed": str(seed)},
                "config": {"steps": TOTAL, "model": {"size": size}, "data": {
                    "batch_size": BATCH, "sources": {"add/1": {}, "add/2": {}},
                    "schedule": CUR.schedule(cond, 2, FRACTION)}},
                "curves": {"add/2": (STEPS, _acc(mid)), "add/1": (STEPS, _acc(50.0))},
            }
    return out


def _analyse(mids: dict[tuple[str, str], list[float | None]]) -> tuple[list, list, list]:
    curves = _curves(mids)
    rows = CUR.per_run(curves)
    return rows, CUR.per_cell(rows), CUR.speedups(rows)


# ----------------------------------------------------------------------------- target examples
def test_target_examples_follow_each_schedule() -> None:
    own = CUR.target_examples_curve(CUR.schedule("own", 3, 0.1), "add/3", 100, 8)
    mixed = CUR.target_examples_curve(CUR.schedule("mixed", 3, 0.1), "add/3", 100, 8)
    ordered = CUR.target_examples_curve(CUR.schedule("ordered", 3, 0.1), "add/3", 100, 8)
    assert own.size == 101 and own[0] == 0 and own[-1] == 800
    assert mixed[-1] == pytest.approx(800 / 3)
    # two prerequisite phases of 10 steps each, then only the target
    assert ordered[20] == 0 and ordered[21] == 8 and ordered[-1] == 8 * 80
    assert CUR.examples_at(ordered, 30.5) == pytest.approx(8 * 10.5)


def test_schedules_and_their_errors() -> None:
    ordered = CUR.schedule("ordered", 3, 0.25)["curriculum"]
    assert [list(p["weights"]) for p in ordered] == [["add/1"], ["add/2"], ["add/3"]]
    assert [p.get("fraction") for p in ordered] == [0.25, 0.25, None]
    assert CUR.schedule("mixed", 2, 0.1) == {"mixture": {"add/1": 1.0, "add/2": 1.0}}
    with pytest.raises(DataError, match="unknown condition 'random'"):
        CUR.schedule("random", 3, 0.1)
    with pytest.raises(DataError, match="leave part of the run for the target"):
        CUR.schedule("ordered", 3, 0.5)
    with pytest.raises(DataError, match="needs a fewer-digit prerequisite"):
        CUR.addition_sources(1)
    with pytest.raises(DataError, match="not an addition source"):
        CUR.digits_of("lego/2")
    assert CUR.digits_of("add/3") == 3


# ----------------------------------------------------------------------------- speedup ratio
def test_bootstrap_ratio_known_values_and_censoring() -> None:
    r = C.bootstrap_ratio([400.0, 600.0], [True, True], [100.0, 100.0], [True, True], seed=1)
    assert r["value"] == pytest.approx(5.0)
    assert r["lower"] == pytest.approx(4.0) and r["upper"] == pytest.approx(6.0)
    # the baseline never reached by step 1000: no point value, at least 1000 / 100
    r = C.bootstrap_ratio([1000.0, 1000.0], [False, False], [100.0, 200.0], [True, True])
    assert r["value"] is None and r["bound"] == "> 6.67" and r["upper"] is None
    assert r["lower"] == pytest.approx(5.0)  # conservative: censored baseline runs at step 1000
    r = C.bootstrap_ratio([100.0, 100.0], [True, True], [1000.0, 1000.0], [False, False])
    assert r["value"] is None and r["bound"] == "< 0.1" and r["lower"] == 0.0
    assert r["upper"] == pytest.approx(0.1)
    r = C.bootstrap_ratio([1000.0], [False], [1000.0], [False])
    assert r["value"] is None and r["bound"] is None and r["lower"] == 0.0 and r["upper"] is None
    with pytest.raises(DataError, match="finite positive"):
        C.bootstrap_ratio([0.0], [True], [10.0], [True])
    with pytest.raises(DataError, match="one reached flag each"):
        C.bootstrap_ratio([10.0, 20.0], [True], [10.0], [True])


# ----------------------------------------------------------------------------- the analysis
def test_analysis_recovers_known_steps_examples_and_speedups() -> None:
    mids = {("tiny", "own"): [400.0, 500.0], ("tiny", "mixed"): [200.0, 250.0],
            ("tiny", "ordered"): [300.0, 350.0],
            ("mini", "own"): [None, None], ("mini", "mixed"): [100.0, 120.0],
            ("mini", "ordered"): [800.0, None]}
    rows, cells, speeds = _analyse(mids)
    assert len(rows) == 12 and [r["size"] for r in rows[:6]] == ["tiny"] * 6
    by = {(r["size"], r["condition"], r["seed"]): r for r in rows}
    for (size, cond), per_seed in mids.items():
        for seed, mid in enumerate(per_seed):
            r = by[(size, cond, seed)]
            assert r["reached"] is (mid is not None)
            if mid is not None:  # log-step interpolation on a 40-point grid: within a few percent
                assert r["steps"] == pytest.approx(mid, rel=0.03)
    # target examples: all rows (own), half (mixed), rows after the prerequisite phase (ordered)
    r = by[("tiny", "mixed", 0)]
    assert r["examples"] == pytest.approx(r["steps"] * BATCH / 2, rel=0.01)
    r = by[("tiny", "ordered", 0)]
    assert r["examples"] == pytest.approx((r["steps"] - FRACTION * TOTAL) * BATCH, rel=0.01)
    assert by[("mini", "own", 0)]["examples"] == TOTAL * BATCH  # censored at the last step
    # the prerequisite's curve (0.9 at step 50) is summarised too
    r = by[("mini", "own", 1)]
    assert r["prereq_first_reach"]["add/1"] == pytest.approx(50.0, rel=0.03)
    assert r["prereq_max_acc"]["add/1"] == pytest.approx(1.0, abs=1e-3)
    assert CUR.prereq_text(r).startswith("add/1 5") and CUR.prereq_text(r).endswith(" / 1.00 / 1.00")

    cell = {(c["size"], c["condition"]): c for c in cells}
    assert cell[("tiny", "own")]["steps"]["median"] == pytest.approx(450.0, rel=0.03)
    assert cell[("mini", "own")]["steps"]["censored"]
    assert cell[("mini", "ordered")]["steps"]["censored"]  # 1 of 2 seeds: median is censored

    sp = {(s["size"], s["treatment"], s["unit"]): s for s in speeds}
    assert sp[("tiny", "mixed", "steps")]["value"] == pytest.approx(2.0, rel=0.03)
    assert sp[("tiny", "mixed", "examples")]["value"] == pytest.approx(4.0, rel=0.03)
    assert sp[("tiny", "ordered", "steps")]["value"] == pytest.approx(450 / 325, rel=0.03)
    assert sp[("tiny", "ordered", "examples")]["value"] == pytest.approx(450 / 125, rel=0.05)
    assert sp[("mini", "mixed", "steps")]["value"] is None
    assert sp[("mini", "mixed", "steps")]["bound"].startswith("> 9")  # 1000 / ~110
    assert sp[("mini", "ordered", "steps")]["bound"] is None  # both medians censored

    v = CUR.verdict(speeds, "mixed", "steps")
    assert v.startswith("replicates at every size")
    assert CUR.verdict(speeds, "ordered", "steps").startswith("mixed across sizes")
    assert "slower" in CUR.verdict(CUR.speedups(_analyse(
        {("tiny", "own"): [100.0, 110.0], ("tiny", "ordered"): [500.0, 600.0],
         ("tiny", "mixed"): [100.0, 110.0]})[0]), "ordered", "steps")


def test_effects_rows_follow_the_contract() -> None:
    _, _, speeds = _analyse({("tiny", "own"): [400.0, 500.0], ("tiny", "mixed"): [200.0, 250.0],
                             ("tiny", "ordered"): [300.0, 350.0], ("mini", "own"): [None, None],
                             ("mini", "mixed"): [100.0, 120.0], ("mini", "ordered"): [200.0, 220.0]})
    rows = CUR.effects(speeds)
    assert len(rows) == 2 * 2 * 2  # sizes x treatments x units
    keys = {"effect", "description", "kind", "size", "n_params", "value", "lower", "upper", "coverage",
            "neutral", "note"}
    assert all(set(r) == keys and r["kind"] == "ratio" and r["neutral"] == 1.0 for r in rows)
    assert {r["effect"] for r in rows} == {f"curriculum:{t}_speedup_{u}" for t in ("mixed", "ordered")
                                            for u in ("steps", "examples")}
    tiny = next(r for r in rows if r["size"] == "tiny" and r["effect"] == "curriculum:mixed_speedup_steps")
    assert tiny["n_params"] == 21_720 and tiny["value"] == pytest.approx(2.0, rel=0.03) and tiny["note"] == ""
    assert tiny["lower"] <= tiny["value"] <= tiny["upper"]
    mini = [r for r in rows if r["size"] == "mini"]
    assert all(r["value"] is None and "censored" in r["note"] and "> " in r["note"] for r in mini)
    # a treatment with a censored seed: a point value, but the conservative lower end is unbounded
    _, _, speeds = _analyse({("tiny", "own"): [400.0, 500.0, 450.0], ("tiny", "mixed"): [200.0, 250.0, None],
                             ("tiny", "ordered"): [300.0, 350.0, 320.0]})
    mixed = next(r for r in CUR.effects(speeds) if r["effect"] == "curriculum:mixed_speedup_steps")
    assert mixed["value"] == pytest.approx(450 / 250, rel=0.03)
    assert mixed["lower"] is None and mixed["upper"] is not None
    assert mixed["note"].startswith("interval unbounded below")
    assert next(s for s in speeds if s["treatment"] == "mixed" and s["unit"] == "steps")["lower"] == 0.0


# ----------------------------------------------------------------------------- the grid
@pytest.mark.parametrize("quick", [True, False])
def test_grid_spec_expands_to_valid_runs(quick: bool) -> None:
    from scalelab.harness.grid import parse_grid
    from scalelab.harness.mixture import schedule_from_config

    spec = CUR.grid_spec(quick)
    s = CUR.SETTINGS[quick]
    runs = parse_grid(spec, source="test").runs()
    assert len(runs) == 3 * len(s["sizes"]) * len(s["seeds"])
    if not quick:
        assert len(s["sizes"]) >= 3 and len(s["seeds"]) >= 2
    cfgs = [r.config.to_dict() if hasattr(r.config, "to_dict") else r.config for r in runs]
    target = f"add/{s['target']}"
    for cfg in cfgs:
        srcs = cfg["data"]["sources"]
        assert sorted(srcs) == [f"add/{k}" for k in range(1, s["target"] + 1)]
        assert {o["options"]["seed"] for o in srcs.values()} == {0}  # the same held-out sets everywhere
        assert all(o["options"]["pad_operands"] and o["options"]["format"] == CUR.FORMAT
                   for o in srcs.values())
        assert [srcs[f"add/{k}"]["options"]["digits"] for k in range(1, s["target"] + 1)] == \
            list(range(1, s["target"] + 1))
        sched = schedule_from_config(cfg["data"]["schedule"])
        w_end = sched.weights_at(s["steps"] - 1, s["steps"])
        assert w_end[target] > 0
        if "curriculum" in cfg["data"]["schedule"]:
            assert sched.weights_at(0, s["steps"]) == {"add/1": 1.0}  # prerequisites first
            assert w_end == {target: 1.0}


def test_same_kind_sources_share_one_run() -> None:
    """The harness mixes addition sources of 1-3 digits: one seq_len, one vocabulary, own eval sets."""
    from scalelab.harness.mixture import DataStream, schedule_from_config
    from scalelab.harness.sources import make_source
    from scalelab.harness.vocab import PAD

    srcs = CUR.addition_sources(3)
    seq_len = CUR.seq_len_for(3)
    built = {n: make_source(s["kind"], name=n, **s["options"]) for n, s in srcs.items()}
    assert seq_len == built["add/3"].min_seq_len() == len("999+999=8991") + 2  # BOS, EOS
    stream = DataStream(built, schedule_from_config(CUR.schedule("mixed", 3, 0.1)), data_seed=0,
                        total_steps=100)
    batch, ids = stream.batch(step=0, batch_size=96, seq_len=seq_len)
    assert batch.tokens.shape == (96, seq_len) and set(ids.tolist()) == {0, 1, 2}
    # 1-digit rows (BOS "7+5=" "21" EOS: 7-8 tokens) are padded to the target's length, and only
    # their result and EOS are scored
    one = ids == stream.names.index("add/1")
    used = (batch.tokens[one] != PAD).sum(axis=1)
    assert set(used.tolist()) <= {7, 8} and used.max() == 8
    assert np.array_equal(batch.loss_mask[one].sum(axis=1), used - 5)
    ev = stream.eval_sets(seq_len)
    assert {k: len(v.batch.tokens) for k, v in ev.items()} == {"add/1": 20, "add/2": 100, "add/3": 200}
    # the held-out 3-digit pairs are never trained on (fresh pairs are drawn outside them)
    held = {tuple(p) for p in built["add/3"].pairs("heldout").tolist()}
    assert len(held) == 200


def test_crossing_is_not_interpolated_back_into_the_prerequisite_phase() -> None:
    steps, acc = np.array([0.0, 100.0, 247.0, 309.0, 387.0]), np.array([0.0, 0.5, 0.5, 1.0, 1.0])
    ordered = CUR.target_examples_curve(CUR.schedule("ordered", 2, 0.2), "add/2", 1500, 64)
    start = CUR.first_data_step(ordered)
    assert start == 300 and CUR.first_data_step(np.arange(5.0)) == 0
    hit, bracket = CUR.crossing(steps, acc, start)
    assert hit == C_CROSSING(309.0, True) and bracket == [300.0, 309.0]
    assert CUR.examples_at(ordered, hit.step) == 9 * 64  # never 0 target examples
    # the same curve without a prerequisite phase is interpolated in log step as usual
    hit, bracket = CUR.crossing(steps, acc, 0)
    assert bracket is None and 247 < hit.step < 309
    # a crossing well after the phase start is interpolated too
    hit, bracket = CUR.crossing(steps, np.array([0.0, 0.5, 0.5, 0.8, 1.0]), start)
    assert bracket is None and 309 < hit.step < 387
    row = {"reached": True, "steps": 309.0, "bracket": [300.0, 309.0], "last_step": 1500.0}
    assert CUR.step_text(row) == "<= 309 (in (300, 309])"
    assert CUR.step_text({**row, "reached": False}) == "not by 1,500"
