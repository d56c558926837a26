"""Interrupting and resuming an ensemble: a pause, a crash, members at different steps, a
finished member, a member continued by the sequential trainer (all in process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from scalelab.harness.ensemble import train_ensemble
from scalelab.harness.trainer import Progress, train
from scalelab.store.runs import RunStore

from .helpers import assert_close_records, members, without_clock

IDS = ["a", "b", "c"]


def _handles(store: RunStore) -> list[Any]:
    return [store.run(i) for i in IDS]


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Records of an uninterrupted ensemble of three members, and of the same runs trained alone."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("straight")
    ens, seq = RunStore(root / "ens"), RunStore(root / "seq")
    cfgs = members()[:3]
    train_ensemble(cfgs, _handles(ens))
    for c, h in zip(cfgs, _handles(seq), strict=True):
        train(c, h)
    return {"ensemble": {i: ens.run(i).read_metrics() for i in IDS},
            "sequential": {i: seq.run(i).read_metrics() for i in IDS}}


def test_pause_then_resume_is_bit_identical_to_a_straight_ensemble(tmp_path: Path, straight) -> None:
    store = RunStore(tmp_path)
    first = train_ensemble(members()[:3], _handles(store), stop_after=10)
    assert [s.step for s in first] == [10] * 3 and not any(s.finished for s in first)
    assert {store.run(i).read_status()["status"] for i in IDS} == {"running"}
    assert {store.run(i).load_checkpoint()["step"] for i in IDS} == {10}  # a pause adds a checkpoint
    again = train_ensemble(members()[:3], _handles(store))
    assert [s.resumed_from for s in again] == [10] * 3 and all(s.finished for s in again)
    for i in IDS:
        assert without_clock(store.run(i).read_metrics()) == without_clock(straight["ensemble"][i])


def test_a_crash_past_a_checkpoint_resumes_without_losing_or_repeating_a_record(tmp_path: Path, straight) -> None:
    store = RunStore(tmp_path)

    def crash(member: int, p: Progress) -> None:
        if p.step == 14 and member == 2:  # after step 13's eval records reached the disk
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train_ensemble(members()[:3], _handles(store), progress=crash)
    assert {store.run(i).read_status()["status"] for i in IDS} == {"failed"}
    assert max(r["step"] for r in store.run("a").read_metrics()) == 13  # past the checkpoint at 8
    again = train_ensemble(members()[:3], _handles(store))
    assert [s.resumed_from for s in again] == [8] * 3
    for i in IDS:
        assert without_clock(store.run(i).read_metrics()) == without_clock(straight["ensemble"][i])


def test_members_at_different_steps_are_brought_to_the_most_advanced_one(tmp_path: Path, straight) -> None:
    store = RunStore(tmp_path)
    cfgs = members()[:3]
    train_ensemble(cfgs, _handles(store), stop_after=8)
    train(cfgs[1], store.run("b"), stop_after=16)  # b moves ahead on its own
    summaries = train_ensemble(cfgs, _handles(store))
    assert [s.resumed_from for s in summaries] == [16, 16, 16]  # a and c caught up first
    for i in IDS:
        got = store.run(i).read_metrics()
        assert_close_records(got, straight["sequential"][i], rel=1e-5)  # none lost, none twice
        assert store.run(i).read_status()["status"] == "finished"


def test_a_finished_member_is_left_alone(tmp_path: Path, straight) -> None:
    store = RunStore(tmp_path)
    cfgs = members()[:3]
    train(cfgs[0], store.run("a"))
    before = (store.run("a").path / "metrics.jsonl").read_bytes()
    summaries = train_ensemble(cfgs, _handles(store))
    assert (store.run("a").path / "metrics.jsonl").read_bytes() == before
    assert summaries[0].finished and summaries[0].resumed_from == 24
    assert summaries[0].final_eval.keys() == summaries[1].final_eval.keys()
    for i in IDS[1:]:
        assert_close_records(store.run(i).read_metrics(), straight["sequential"][i], rel=1e-5)


def test_a_paused_member_continues_in_the_sequential_trainer(tmp_path: Path, straight) -> None:
    store = RunStore(tmp_path)
    cfgs = members()[:3]
    train_ensemble(cfgs, _handles(store), stop_after=8)
    summary = train(cfgs[2], store.run("c"))
    assert summary.resumed_from == 8 and summary.finished
    assert_close_records(store.run("c").read_metrics(), straight["sequential"]["c"], rel=1e-5)


class _Recording:
    """An observer that keeps what it is handed (as a W&B observer would log it)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.records: list[dict[str, Any]] = []

    def start(self, *, run_id: str, config: Any, provenance: Any, start_step: int, facts: Any) -> None:
        self.calls.append(("start", (run_id, start_step, facts["n_params_nonembedding"])))

    def log(self, records: Any) -> None:
        self.records.extend(dict(r) for r in records)

    def finish(self, status: str) -> None:
        self.calls.append(("finish", status))


def test_each_member_feeds_its_own_observer(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    watchers = [_Recording(), _Recording()]
    train_ensemble(members()[:2], [store.run("a"), store.run("b")], stop_after=5, observers=watchers)
    train_ensemble(members()[:2], [store.run("a"), store.run("b")], observers=watchers)
    for run_id, w in zip(("a", "b"), watchers, strict=True):
        assert w.calls == [("start", (run_id, 0, 21720)), ("finish", "paused"),
                           ("start", (run_id, 5, 21720)), ("finish", "finished")]
        assert w.records == store.run(run_id).read_metrics()  # the store's records, each handed over once
