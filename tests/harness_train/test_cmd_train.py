"""`scalelab train` through cmd_train.main, and a kill -9 of a real training process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scalelab.cli.cmd_train import main
from scalelab.store.runs import RunStore

TOML = """\
steps = {steps}
checkpoint_every = {every}
device = "cpu"
init_seed = 0
data_seed = 1

[model]
size = "tiny"
dropout = 0.1

[optim]
lr = 1e-2
warmup_steps = 2

[data]
seq_len = 12
batch_size = 16

[data.sources.modadd]
kind = "modular"
options = {{ p = 7, train_fraction = 0.8 }}

[data.sources.prose]
kind = "text"
options = {{ domain = "python_prose", eval_size = 8 }}

[data.schedule]
mixture = {{ modadd = 3, prose = 1 }}

[eval]
count = 12
max_examples = 64
"""


def write_config(folder: Path, steps: int, every: int) -> Path:
    path = folder / "tiny.toml"
    path.write_text(TOML.format(steps=steps, every=every))
    return path


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "value": None} if r["metric"] == "tokens_per_s" else r for r in records]


def test_train_command_trains_and_resumes_a_finished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, steps=8, every=4)
    store = tmp_path / "store"
    assert main([str(cfg), "--store", str(store), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "step      0/8  modadd loss" in out and "step      8/8  online_loss" in out
    assert "run tiny: finished at step 8/8" in out
    run = RunStore(store).run("tiny")
    assert run.read_status()["status"] == "finished"
    n = len(run.read_metrics())
    assert main([str(cfg), "--store", str(store), "--threads", "1", "--quiet"]) == 0
    assert "run tiny: already finished at step 8; nothing to do" in capsys.readouterr().out
    assert len(run.read_metrics()) == n


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("steps = 5\n[data]\nseq_len = 8\nbatch_size = 2\n[data.sources.a]\nkind = 'modular'\n[optim]\nlr_max = 1\n",
         "unknown key 'optim.lr_max'"),
        ("steps = 'many'\n", "steps must be an integer"),
        ("steps = 5\n[data]\nseq_len = 8\nbatch_size = 2\n[data.sources.a]\nkind = 'modular'\n[data.schedule]\nmixture = {}\n",
         "data.schedule.mixture is empty"),
        ("steps = [\n", "is not valid TOML"),
    ],
)
def test_bad_configs_fail_with_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   text: str, fragment: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert main([str(cfg), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    assert not (tmp_path / "store").exists()


def test_module_imports_neither_torch_nor_numpy() -> None:
    code = ("import sys; import scalelab.cli.cmd_train\n"
            "print([m for m in ('numpy', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _command(cfg: Path, store: Path) -> list[str]:
    args = [str(cfg), "--store", str(store), "--run-id", "r", "--threads", "1", "--quiet"]
    return [sys.executable, "-c", f"import sys; from scalelab.cli.cmd_train import main; sys.exit(main({args!r}))"]


def test_kill_9_then_rerun_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    """A real process is killed after its first checkpoint; rerunning finishes the run with the
    same records as a straight run: none lost, none duplicated, bit-identical values."""
    cfg = write_config(tmp_path, steps=300, every=25)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    ref = subprocess.run(_command(cfg, straight), capture_output=True, text=True, env=env, timeout=300)
    assert ref.returncode == 0, ref.stderr

    proc = subprocess.Popen(_command(cfg, killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    ckpt = killed / "r" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    time.sleep(0.3)  # let it run past the checkpoint and write more records
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    run = RunStore(killed).run("r")
    cut = run.load_checkpoint()["step"]
    assert 0 < cut < 300
    assert RunStore(killed).runs()[0].status == "interrupted"

    again = subprocess.run(_command(cfg, killed), capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resumed from step {cut}" in again.stdout
    expected = list(RunStore(straight).run("r").read_metrics())
    got = list(run.read_metrics())
    assert len(got) == len(expected)
    assert comparable(got) == comparable(expected)
    assert run.read_status()["status"] == "finished"
