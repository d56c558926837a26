"""Live logging offline: a real grid logged with WANDB_MODE=offline reads back to the store's metrics."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from scalelab.cli.cmd_grid import register as register_grid
from scalelab.cli.cmd_wandb import main as wandb_main
from scalelab.cli.main import run_commands
from scalelab.harness.config import RunConfig
from scalelab.harness.trainer import train
from scalelab.store.runs import RunStore
from scalelab.tracking.offline import read_offline_run
from tests.tracking.conftest import scan_for_key

wandb = pytest.importorskip("wandb")

GRID = """
name = "wb"

[base]
steps = 16
checkpoint_every = 8
device = "cpu"

[base.model]
size = "tiny"

[base.optim]
lr = 3e-3

[base.data]
seq_len = 12
batch_size = 8

[base.data.sources.modadd]
kind = "modular"
options = { p = 7, train_fraction = 0.8 }

[base.data.sources.prose]
kind = "text"
options = { domain = "python_prose", eval_size = 8 }

[base.eval]
count = 5
max_examples = 32

[[axis]]
name = "seed"
paths = ["init_seed", "data_seed"]
values = [0, 1]
"""

RUN: dict[str, Any] = {
    "steps": 16, "checkpoint_every": 4, "device": "cpu",
    "model": {"size": "tiny"}, "optim": {"lr": 3e-3},
    "eval": {"count": 5, "max_examples": 32},
    "data": {"seq_len": 12, "batch_size": 8,
             "sources": {"modadd": {"kind": "modular", "options": {"p": 7, "train_fraction": 0.8}}}},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def canonical(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (r["step"], r["split"], r["source"], r["metric"]))


def test_offline_grid_reads_back_to_the_same_metrics(tmp_path: Path, wandb_env: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    store = tmp_path / "store"
    assert run_commands(["grid", str(grid), "--store", str(store), "--wandb", "scalelab-test"], register_grid) == 0
    wandb.teardown()  # W&B writes the end of a run log when its service shuts down (process exit)
    offline = sorted((wandb_env / "dir" / "wandb").glob("offline-run-*"))
    assert len(offline) == 2

    back = tmp_path / "back"
    assert wandb_main(["wandb", "import-offline", str(wandb_env / "dir"), "-o", str(back)]) == 0
    assert "imported 2 offline runs" in capsys.readouterr().out
    original, copy_ = RunStore(store), RunStore(back)
    assert copy_.run_ids() == original.run_ids()
    for rid in original.run_ids():
        a, b = original.run(rid), copy_.run(rid)
        kinds = Counter((r["split"], r["source"], r["metric"]) for r in a.read_metrics())
        assert len(kinds) == 10 and kinds[("train", "prose", "online_loss")] == 16  # every step
        assert kinds[("eval", "modadd/train", "acc")] == 5  # every eval (steps 0, 1, 3, 7, 16)
        assert canonical(b.read_metrics()) == canonical(a.read_metrics())  # every value, bit for bit
        assert b.config() == a.config()
        assert b.provenance()["created_at"] == a.provenance()["created_at"]
        assert b.provenance()["wandb"]["project"] == "scalelab-test"
    assert [i.status for i in copy_.runs()] == ["finished", "finished"]
    cols = ["run", "init_seed", "n_params", "step", "tokens", "flops", "split", "source", "metric", "value"]
    ta, tb = original.export(), copy_.export()
    rows_a = sorted(zip(*(ta.column(c).tolist() for c in cols), strict=True))
    assert rows_a == sorted(zip(*(tb.column(c).tolist() for c in cols), strict=True))

    # importing again adds nothing
    assert wandb_main(["wandb", "import-offline", str(wandb_env / "dir"), "-o", str(back)]) == 0
    assert "(0 new records)" in capsys.readouterr().out
    assert scan_for_key(tmp_path) == []  # the API key is in no file: store, W&B folders, logs


def test_paused_and_resumed_run_merges_its_offline_sessions(tmp_path: Path, wandb_env: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = RunConfig.from_dict({**copy.deepcopy(RUN), "tracking": {"wandb": {"project": "p", "mode": "auto"}}})
    run = RunStore(tmp_path / "store").run("tiny")
    train(cfg, run, stop_after=8)
    wandb.teardown()
    first = sorted((wandb_env / "dir" / "wandb").glob("offline-run-*"))
    assert len(first) == 1
    paused = read_offline_run(first[0])
    assert paused.summary["scalelab/status"] == "paused" and paused.history[-1]["_step"] == 8
    train(cfg, run)
    wandb.teardown()
    sessions = sorted((wandb_env / "dir" / "wandb").glob("offline-run-*"))
    assert len(sessions) == 2
    merged = read_offline_run(sessions)
    assert [row["_step"] for row in merged.history] == sorted({r["step"] for r in run.read_metrics()})
    assert merged.summary["scalelab/status"] == "finished" and merged.exit_code == 0
    assert merged.config["scalelab"]["n_params_nonembedding"] == 21720
    assert merged.config["tracking"]["wandb"]["project"] == "p"

    assert wandb_main(["wandb", "import-offline", *map(str, sessions), "-o", str(tmp_path / "back")]) == 0
    back = RunStore(tmp_path / "back").run("tiny")
    assert canonical(back.read_metrics()) == canonical(run.read_metrics())
    assert json.loads((back.path / "status.json").read_text())["n_params_nonembedding"] == 21720


def test_train_command_wandb_flag(tmp_path: Path, wandb_env: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from scalelab.cli.cmd_train import main as train_main

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("steps = 6\ndevice = 'cpu'\n[eval]\ncount = 3\nmax_examples = 16\n[data]\nseq_len = 12\n"
                   "batch_size = 8\n[data.sources.m]\nkind = 'modular'\noptions = { p = 7 }\n")
    store = tmp_path / "store"
    assert train_main([str(cfg), "--store", str(store), "--quiet", "--wandb", "team/proj"]) == 0
    assert train_main([str(cfg), "--store", str(store), "--wandb", "team/"]) == 2
    assert capsys.readouterr().err.strip() == ("error: W&B target 'team/' is not PROJECT or ENTITY/PROJECT; "
                                               "e.g. --wandb my-team/scaling")
    wandb.teardown()
    run = read_offline_run(wandb_env / "dir")
    assert (run.project, run.entity, run.config["scalelab"]["run_id"]) == ("proj", "team", "tiny")
    assert run.config["tracking"]["wandb"] == {"project": "proj", "entity": "team", "mode": "auto", "tags": [],
                                              "init_timeout": 30.0, "finish_timeout": 60.0}
    assert [row["_step"] for row in run.history] == list(range(7))
