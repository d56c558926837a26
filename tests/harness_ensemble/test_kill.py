"""kill -9 of a real process training a grid as an ensemble, then the same grid again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from scalelab.harness.executors import LocalExecutor, run_grid
from scalelab.harness.grid import parse_grid
from scalelab.store.runs import RunStore

from .helpers import assert_close_records

GRID = """
name = "k"

[base]
steps = 160
checkpoint_every = 20
device = "cpu"
[base.model]
size = "tiny"
[base.optim]
lr = 3e-3
warmup_steps = 5
[base.data]
seq_len = 12
batch_size = 8
[base.data.sources.modadd]
kind = "modular"
options = { p = 7, train_fraction = 0.8 }
[base.eval]
count = 6
max_examples = 16

[[axis]]
name = "seed"
paths = ["init_seed", "data_seed"]
values = [0, 1]
"""

SCRIPT = """
import sys, tomllib
from scalelab.harness.executors import LocalExecutor, run_grid
from scalelab.harness.grid import parse_grid
runs = parse_grid(tomllib.loads(open(sys.argv[1]).read())).runs()
run_grid(runs, sys.argv[2], LocalExecutor(threads=1), ensemble=True)
"""


def test_kill_9_mid_ensemble_then_rerun_loses_and_repeats_no_record(tmp_path: Path) -> None:
    grid_file = tmp_path / "g.toml"
    grid_file.write_text(GRID)
    runs = parse_grid(tomllib.loads(GRID)).runs()
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert run_grid(runs, str(clean), LocalExecutor(threads=1), ensemble=True).ok

    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(grid_file), str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(killed.glob("*/checkpoint.pt"))) == 2:  # every member checkpointed once
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the grid finished before it could be killed; make it longer"
        time.sleep(0.3)  # let it run past the checkpoint and write more records
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    store = RunStore(killed)
    steps = {i: store.run(i).load_checkpoint()["step"] for i in store.run_ids()}
    assert all(0 < s < 160 for s in steps.values()), steps
    assert {info.status for info in store.runs()} == {"interrupted"}

    summary = run_grid(runs, str(killed), LocalExecutor(threads=1), ensemble=True)
    assert summary.ok and summary.count("finished") == 2, [o.error for o in summary.outcomes]
    for r in runs:
        got, expected = store.run(r.run_id).read_metrics(), RunStore(clean).run(r.run_id).read_metrics()
        # members killed at one checkpoint resume bit for bit; one caught up alone, to float tolerance
        assert_close_records(got, expected, rel=1e-5)
        assert store.run(r.run_id).read_status()["attempts"] == 2


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCALELAB_WANDB", raising=False)
