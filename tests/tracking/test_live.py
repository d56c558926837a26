"""Live logging never stops or blocks training: unreachable servers, failing observers, no wandb."""

from __future__ import annotations

import copy
import socket
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from scalelab.errors import DataError
from scalelab.harness.config import RunConfig
from scalelab.harness.trainer import train
from scalelab.store.runs import RunStore
from scalelab.tracking.live import TrackingWarning
from tests.tracking.conftest import scan_for_key

wandb = pytest.importorskip("wandb")

RUN: dict[str, Any] = {
    "steps": 12, "checkpoint_every": 6, "device": "cpu",
    "model": {"size": "tiny"}, "optim": {"lr": 3e-3},
    "eval": {"count": 4, "max_examples": 32},
    "data": {"seq_len": 12, "batch_size": 8,
             "sources": {"modadd": {"kind": "modular", "options": {"p": 7, "train_fraction": 0.8}}}},
}
#: (split, source, metric) -> records of a finished 12-step run of RUN
EXPECTED = {("train", "all", "online_loss"): 12, ("train", "modadd", "online_loss"): 12,
            ("eval", "modadd", "loss"): 4, ("eval", "modadd", "acc"): 4, ("eval", "modadd/train", "loss"): 4,
            ("eval", "modadd/train", "acc"): 4, ("train", "all", "lr"): 4, ("train", "all", "tokens_per_s"): 4}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(**wandb_options: Any) -> RunConfig:
    return RunConfig.from_dict({**copy.deepcopy(RUN), "tracking": {"wandb": {"project": "p", **wandb_options}}})


def kinds(records: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    return dict(Counter((r["split"], r["source"], r["metric"]) for r in records))


def test_unreachable_server_in_online_mode_logs_offline_and_training_finishes(
        tmp_path: Path, wandb_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    run = RunStore(tmp_path / "store").run("r")
    t0 = time.perf_counter()
    with pytest.warns(TrackingWarning, match=r"cannot connect to http://127.0.0.1:9 .*logging offline instead"):
        summary = train(config(mode="online", init_timeout=5, finish_timeout=5), run)
    assert time.perf_counter() - t0 < 60
    assert summary.finished and run.read_status()["status"] == "finished"
    assert kinds(run.read_metrics()) == EXPECTED
    wandb.teardown()
    assert len(list((wandb_env / "dir" / "wandb").glob("offline-run-*"))) == 1  # nothing lost
    assert scan_for_key(tmp_path) == []


def test_a_server_that_never_answers_costs_seconds_not_minutes(tmp_path: Path, wandb_env: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # connections complete in the kernel, requests are never answered
    try:
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{hole.getsockname()[1]}")
        run = RunStore(tmp_path / "store").run("r")
        t0 = time.perf_counter()
        with pytest.warns(TrackingWarning, match=r"did not answer within 2 s"):
            train(config(mode="auto", init_timeout=2, finish_timeout=5), run)
        assert time.perf_counter() - t0 < 30
        assert kinds(run.read_metrics()) == EXPECTED
    finally:
        hole.close()


class _Boom:
    """An observer that fails on its second batch of records."""

    def __init__(self) -> None:
        self.batches = 0
        self.finished: list[str] = []

    def start(self, **kw: Any) -> None:
        self.started = kw

    def log(self, records: Any) -> None:
        self.batches += 1
        if self.batches == 2:
            raise ConnectionError("the network went away")

    def finish(self, status: str) -> None:
        self.finished.append(status)


def test_a_failing_observer_is_dropped_with_one_warning(tmp_path: Path) -> None:
    run = RunStore(tmp_path / "store").run("r")
    boom = _Boom()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(RunConfig.from_dict(copy.deepcopy(RUN)), run, observer=boom)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "ConnectionError in log: the network went away" in messages[0]
    assert boom.batches == 2 and boom.finished == []  # dropped: not called again
    assert boom.started["run_id"] == "r" and boom.started["start_step"] == 0
    status = run.read_status()
    assert boom.started["facts"] == {"n_params": status["n_params"], "n_params_nonembedding": 21720}
    assert kinds(run.read_metrics()) == EXPECTED


def test_missing_wandb_is_one_clear_error_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    run = RunStore(tmp_path / "store").run("r")
    with pytest.raises(DataError, match=r"^W&B support needs the wandb package: pip install 'scalelab\[wandb\]'$"):
        train(config(), run)
    assert not run.exists

    from scalelab.cli.cmd_train import main as train_main
    from scalelab.cli.cmd_wandb import main as wandb_main

    cfg = tmp_path / "run.toml"
    cfg.write_text("steps = 4\n[data]\nseq_len = 12\nbatch_size = 8\n[data.sources.m]\nkind = 'modular'\n"
                   "options = { p = 7 }\n")
    assert train_main([str(cfg), "--store", str(tmp_path / "s"), "--wandb", "team/proj"]) == 2
    assert wandb_main(["wandb", "import-offline", str(tmp_path), "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: W&B support needs the wandb package: pip install 'scalelab[wandb]'"] * 2
    assert not (tmp_path / "s").exists()


def test_a_server_that_fails_to_start_the_run_falls_back_to_offline(tmp_path: Path, wandb_env: Path,
                                                                    fake_wandb: Any) -> None:
    fake_wandb.fail = {"UpsertBucket"}  # answers the login check, refuses to create runs
    run = RunStore(tmp_path / "store").run("r")
    t0 = time.perf_counter()
    with pytest.warns(TrackingWarning, match=r"online start failed .*logging offline as W&B run r-[0-9a-f]{12}-offline"):
        train(config(mode="online", init_timeout=3, finish_timeout=3), run)
    assert time.perf_counter() - t0 < 30
    assert kinds(run.read_metrics()) == EXPECTED
    assert fake_wandb.runs("ent", "p") == []
    wandb.teardown()
    [folder] = (wandb_env / "dir" / "wandb").glob("offline-run-*")
    assert folder.name.endswith("-offline")  # saved for `wandb sync`
