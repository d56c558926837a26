"""The trainer: records, learning, checkpoints and exact resumption (in process)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from scalelab.errors import DataError
from scalelab.harness.config import RunConfig
from scalelab.harness.evaluation import eval_steps
from scalelab.harness.trainer import Progress, lr_multiplier, train
from scalelab.store.runs import RunStore

CONFIG: dict[str, Any] = {
    "steps": 40,
    "checkpoint_every": 10,
    "device": "cpu",
    "init_seed": 1,
    "data_seed": 2,
    "model": {"size": "tiny", "dropout": 0.1},  # dropout: the torch RNG must be restored too
    "optim": {"lr": 1e-2, "warmup_steps": 5},
    "eval": {"count": 8, "max_examples": 64},
    "data": {
        "seq_len": 12,
        "batch_size": 16,
        "sources": {"modadd": {"kind": "modular", "options": {"p": 7, "train_fraction": 0.8}},
                    "prose": {"kind": "text", "options": {"domain": "python_prose", "eval_size": 8}}},
        "schedule": {"mixture": {"modadd": 3, "prose": 1}},
    },
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(**changes: Any) -> RunConfig:
    d = copy.deepcopy(CONFIG)
    d.update(changes)
    return RunConfig.from_dict(d)


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record, with the wall-clock tokens/s value blanked (its presence still compared)."""
    return [{**r, "value": None} if r["metric"] == "tokens_per_s" else r for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The metrics of an uninterrupted run of CONFIG."""
    torch.set_num_threads(1)
    run = RunStore(tmp_path_factory.mktemp("ref")).run("ref")
    summary = train(config(), run)
    assert summary.finished and summary.resumed_from is None
    return list(run.read_metrics())


def test_records_carry_counters_and_follow_the_schedule(reference: list[dict[str, Any]]) -> None:
    cfg = config()
    n_ne = 21_720  # tiny
    positions = 16 * 11
    for r in reference:
        assert set(r) == {"step", "examples", "tokens", "flops", "split", "source", "metric", "value"}
        assert r["examples"] == 16 * r["step"] and r["tokens"] == positions * r["step"]
        assert r["flops"] == 6.0 * n_ne * r["tokens"]
    online = [r for r in reference if r["metric"] == "online_loss"]
    assert [r["step"] for r in online if r["source"] == "all"] == list(range(1, 41))
    assert {r["source"] for r in online} == {"all", "modadd", "prose"}
    ev = [r for r in reference if r["split"] == "eval"]
    assert sorted({r["step"] for r in ev}) == eval_steps(40, 8)
    assert {(r["source"], r["metric"]) for r in ev} == {
        ("modadd", "loss"), ("modadd", "acc"), ("modadd/train", "loss"), ("modadd/train", "acc"),
        ("prose", "loss")}
    lr = {r["step"]: r["value"] for r in reference if r["metric"] == "lr"}
    flushes = (set(eval_steps(40, 8)) | {10, 20, 30, 40}) - {0}
    assert set(lr) == flushes
    assert {r["step"] for r in reference if r["metric"] == "tokens_per_s"} == flushes
    for step, value in lr.items():  # the rate used for update `step` (0-based update step - 1)
        assert value == pytest.approx(1e-2 * lr_multiplier(step - 1, steps=40, warmup_steps=5, min_lr_ratio=0.1))
    # 'all' is the token-weighted mean of the per-source losses of the batch.
    assert all(r["value"] is not None and math.isfinite(r["value"]) for r in online)
    assert cfg.steps == 40


def test_a_tiny_run_learns(reference: list[dict[str, Any]]) -> None:
    def ev(step: int, skill: str) -> float:
        return next(r["value"] for r in reference
                    if r["step"] == step and r["source"] == skill and r["metric"] == "loss" and r["split"] == "eval")

    assert ev(40, "modadd/train") < 0.5 * ev(0, "modadd/train")  # the answer is 1 of 7 residues
    assert ev(40, "prose") < 0.9 * ev(0, "prose")  # a quarter of the rows, 40 steps: byte frequencies
    online = [r["value"] for r in reference if r["metric"] == "online_loss" and r["source"] == "all"]
    assert sum(online[-5:]) < 0.6 * sum(online[:5])


def test_runs_are_reproducible_and_seeds_matter(reference: list[dict[str, Any]], tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    train(config(), store.run("again"))
    assert comparable(list(store.run("again").read_metrics())) == comparable(reference)
    train(config(data_seed=3), store.run("data3"))
    other = store.run("data3").read_metrics()
    assert [r["value"] for r in other if r["metric"] == "online_loss"][:1] != \
        [r["value"] for r in reference if r["metric"] == "online_loss"][:1]


def test_stop_after_then_resume_is_bit_identical(reference: list[dict[str, Any]], tmp_path: Path) -> None:
    run = RunStore(tmp_path).run("r")
    first = train(config(), run, stop_after=25)  # 25 is no checkpoint multiple: stopping writes one
    assert not first.finished and first.step == 25
    assert run.read_status()["status"] == "running"
    assert run.load_checkpoint()["step"] == 25
    second = train(config(), run)
    assert second.finished and second.resumed_from == 25
    assert comparable(list(run.read_metrics())) == comparable(reference)
    assert run.read_status()["status"] == "finished"


class Crash(Exception):
    pass


def test_crash_after_a_checkpoint_then_resume_is_bit_identical(reference: list[dict[str, Any]], tmp_path: Path) -> None:
    run = RunStore(tmp_path).run("r")

    def crash_at_27(p: Progress) -> None:
        if p.step == 27:
            raise Crash("boom")

    assert 23 in eval_steps(40, 8)  # records of step 23 are flushed after the checkpoint at 20
    with pytest.raises(Crash):
        train(config(), run, progress=crash_at_27)
    status = run.read_status()
    assert status["status"] == "failed" and "boom" in status["error"]
    assert run.load_checkpoint()["step"] == 20
    written = {r["step"] for r in run.read_metrics()}
    assert max(written) == 23  # records past the checkpoint reached the disk and must be dropped
    summary = train(config(), run)
    assert summary.resumed_from == 20 and summary.finished
    assert comparable(list(run.read_metrics())) == comparable(reference)


def test_a_finished_run_is_not_trained_again(reference: list[dict[str, Any]], tmp_path: Path) -> None:
    run = RunStore(tmp_path).run("r")
    train(config(), run)
    before, status = list(run.read_metrics()), run.read_status()
    summary = train(config(), run)
    assert summary.finished and summary.resumed_from == 40 and summary.step == 40
    assert list(run.read_metrics()) == before
    assert run.read_status() == status
    assert set(summary.final_eval) == {"modadd", "modadd/train", "prose"}


def test_checkpoint_holds_everything_needed(tmp_path: Path) -> None:
    run = RunStore(tmp_path).run("r")
    train(config(steps=10, checkpoint_every=0), run)
    state = torch.load(run.checkpoint_path, weights_only=True)
    assert state["step"] == 10 and state["data_cursor"] == 10
    assert {"model", "optimizer", "scheduler", "rng", "config"} <= set(state)
    assert {"torch", "numpy", "python"} <= set(state["rng"])
    assert isinstance(state["rng"]["torch"], torch.Tensor)
    assert RunConfig.from_dict(__import__("json").loads(state["config"])) == config(steps=10, checkpoint_every=0)


def test_a_run_with_another_config_is_refused_before_training(tmp_path: Path) -> None:
    run = RunStore(tmp_path).run("r")
    train(config(steps=5), run)
    with pytest.raises(DataError, match="different config"):
        train(config(steps=6), run)
    # Only the device may differ (a run may resume elsewhere).
    train(config(steps=5, device="auto"), run)


def test_a_grid_style_raw_config_is_accepted(tmp_path: Path) -> None:
    """The grid stores the config as written (defaults not filled in); the trainer accepts it."""
    run = RunStore(tmp_path).run("r")
    raw = {**copy.deepcopy(CONFIG), "steps": 5, "grid": {"name": "g", "labels": {"seed": "0"}}}
    run.start(raw)
    summary = train(RunConfig.from_dict(raw), run)
    assert summary.finished


def test_bad_source_options_fail_before_anything_is_written(tmp_path: Path) -> None:
    bad = copy.deepcopy(CONFIG)
    bad["data"]["sources"]["modadd"]["options"]["p"] = 8  # not a prime
    store = RunStore(tmp_path)
    with pytest.raises(DataError, match="prime"):
        train(RunConfig.from_dict(bad), store.run("r"))
    short = copy.deepcopy(CONFIG)
    short["data"]["seq_len"] = 4
    with pytest.raises(DataError, match="seq_len"):
        train(RunConfig.from_dict(short), store.run("r"))
    assert store.run_ids() == []


def test_lr_multiplier() -> None:
    assert [lr_multiplier(u, steps=10, warmup_steps=2, min_lr_ratio=0.1) for u in (0, 1)] == [0.5, 1.0]
    assert lr_multiplier(2, steps=10, warmup_steps=2, min_lr_ratio=0.1) == 1.0
    assert lr_multiplier(10, steps=10, warmup_steps=2, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_multiplier(6, steps=10, warmup_steps=2, min_lr_ratio=0.0) == pytest.approx(0.5)
