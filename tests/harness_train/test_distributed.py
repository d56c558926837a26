"""Data parallelism inside one run: torchrun with 2 CPU processes on gloo against one process.

The data-parallel run sums gradients (gloo all-reduce) and per-row losses in a different order
than one process does on the whole batch, so values agree to float tolerance (rtol 1e-5), not
bit for bit. Between two data-parallel runs of the same world size they are bit-identical.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from scalelab.cli.cmd_train import main
from scalelab.errors import DataError
from scalelab.harness import distributed
from scalelab.harness.config import RunConfig
from scalelab.harness.distributed import Launch
from scalelab.harness.trainer import train
from scalelab.store.runs import RunStore

CONFIG: dict[str, Any] = {
    "steps": 16,
    "checkpoint_every": 8,
    "device": "cpu",
    "init_seed": 0,
    "data_seed": 1,
    "model": {"size": "tiny"},  # no dropout: dropout masks depend on how rows are split
    "optim": {"lr": 1e-2, "warmup_steps": 2},
    "eval": {"count": 6, "max_examples": 32},
    "data": {
        "seq_len": 12,
        "batch_size": 8,  # 4 rows per rank; the rows' loss-mask token counts differ
        "sources": {"modadd": {"kind": "modular", "options": {"p": 7, "train_fraction": 0.8}},
                    "prose": {"kind": "text", "options": {"domain": "python_prose", "eval_size": 8}}},
        "schedule": {"mixture": {"modadd": 3, "prose": 1}},
    },
}

#: Runs a list of jobs ``[{"config", "store", "run", "stop_after"[, "errors"]}, ...]`` in order on
#: every rank; a job with an ``errors`` folder expects a DataError and writes it to ``errors/RANK``.
SCRIPT = """\
import json, os, sys
from pathlib import Path
import torch
from scalelab.errors import DataError
from scalelab.harness.config import RunConfig
from scalelab.harness.trainer import train
from scalelab.store.runs import RunHandle
torch.set_num_threads(1)
for job in json.load(open(sys.argv[1])):
    try:
        train(RunConfig.from_dict(job["config"]), RunHandle(job["store"], job["run"]), stop_after=job["stop_after"])
    except DataError as exc:
        if "errors" not in job:
            raise
        Path(job["errors"], os.environ["RANK"]).write_text(str(exc))
"""

LAUNCH_VARS = (*distributed.LAUNCH_VARIABLES, "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE",
               "GROUP_RANK", "TORCHELASTIC_RUN_ID")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One torch thread (the workers use one too), and no launch variables from outside."""
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config_dict(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(CONFIG)
    for key, value in changes.items():
        if isinstance(value, dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` (its launcher as a module of this Python)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def key(r: dict[str, Any]) -> tuple[int, str, str, str]:
    return r["step"], r["split"], r["source"], r["metric"]


def assert_close_records(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Same records in the same order, each once; values within rtol 1e-5 (tokens/s excepted)."""
    assert [key(r) for r in got] == [key(r) for r in expected]
    assert len({key(r) for r in got}) == len(got), "a record was written twice"
    for g, e in zip(got, expected, strict=True):
        assert {k: v for k, v in g.items() if k != "value"} == {k: v for k, v in e.items() if k != "value"}
        if g["metric"] != "tokens_per_s":
            assert math.isclose(g["value"], e["value"], rel_tol=1e-5, abs_tol=1e-9), (key(g), g["value"], e["value"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The metrics of CONFIG trained by one process."""
    torch.set_num_threads(1)
    run = RunStore(tmp_path_factory.mktemp("single")).run("tiny")
    assert train(RunConfig.from_dict(config_dict()), run).finished
    return list(run.read_metrics())


def test_torchrun_matches_a_single_process_run(reference: list[dict[str, Any]], tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(config_dict()))
    store = tmp_path / "store"
    out = torchrun("-m", "scalelab", "train", str(cfg), "--store", str(store), "--threads", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()  # progress and summary from rank 0 only
    assert sum(line.startswith("run tiny: finished at step 16/16") for line in lines) == 1, out.stdout
    assert "on cpu x 2 processes" in out.stdout
    assert sum(line.startswith("step     16/16") for line in lines) == 1
    run = RunStore(store).run("tiny")
    got = list(run.read_metrics())
    assert_close_records(got, reference)  # one writer: no duplicated records, same per-step losses
    final = {(r["source"], r["metric"]): r["value"] for r in got if r["split"] == "eval" and r["step"] == 16}
    assert len(final) == 5 and all(math.isfinite(v) for v in final.values())
    status = run.read_status()
    assert status is not None and status["status"] == "finished" and status["world_size"] == 2
    assert run.provenance()["world_size"] == 2
    state = run.load_checkpoint()
    assert state is not None
    assert not any(k.startswith("module.") for k in state["model"])  # the unwrapped model
    ranks = state["rng_ranks"]  # every rank's RNG state; ranks draw dropout from distinct streams
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])
    assert torch.equal(ranks[0]["torch"], state["rng"]["torch"])


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One torchrun launch of SCRIPT:

    * ``handover``: started by one process up to step 5 (here), continued by 2 processes to
      step 11 (there), finished by one process in the test;
    * an attempt to train ``handover`` with another config, which rank 0 refuses;
    * ``dropout-straight`` and ``dropout-paused`` (paused at step 7, resumed in the same
      launch), with dropout 0.1.
    """
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("script")
    store = root / "store"
    base = config_dict()
    train(RunConfig.from_dict(base), RunStore(store).run("handover"), stop_after=5)
    dropout = config_dict(model={"size": "tiny", "dropout": 0.1})
    jobs = [
        {"config": base, "store": str(store), "run": "handover", "stop_after": 11},
        {"config": config_dict(steps=17), "store": str(store), "run": "handover", "stop_after": None,
         "errors": str(root / "errors")},
        {"config": dropout, "store": str(store), "run": "dropout-straight", "stop_after": None},
        {"config": dropout, "store": str(store), "run": "dropout-paused", "stop_after": 7},
        {"config": dropout, "store": str(store), "run": "dropout-paused", "stop_after": None},
    ]
    (root / "errors").mkdir()
    (root / "jobs.json").write_text(json.dumps(jobs))
    (root / "jobs.py").write_text(SCRIPT)
    out = torchrun(str(root / "jobs.py"), str(root / "jobs.json"), cwd=root)
    assert out.returncode == 0, out.stderr
    return store


def test_a_run_moves_between_one_and_two_processes(reference: list[dict[str, Any]], script_runs: Path) -> None:
    run = RunStore(script_runs).run("handover")
    state = run.load_checkpoint()
    assert state is not None and state["step"] == 11 and len(state["rng_ranks"]) == 2
    summary = train(RunConfig.from_dict(config_dict()), run)  # one process resumes a DDP checkpoint
    assert summary.finished and summary.resumed_from == 11 and summary.world_size == 1
    assert_close_records(list(run.read_metrics()), reference)


def test_rank_0_refusing_a_run_stops_every_rank_with_its_error(script_runs: Path) -> None:
    errors = {p.name: p.read_text() for p in (script_runs.parent / "errors").iterdir()}
    assert set(errors) == {"0", "1"} and errors["0"] == errors["1"]
    assert "already exists with a different config (it differs in 'steps')" in errors["0"]


def test_a_paused_data_parallel_run_resumes_bit_identically(script_runs: Path) -> None:
    store = RunStore(script_runs)
    straight = [r for r in store.run("dropout-straight").read_metrics() if r["metric"] != "tokens_per_s"]
    paused = [r for r in store.run("dropout-paused").read_metrics() if r["metric"] != "tokens_per_s"]
    assert len(straight) > 16 and paused == straight  # every rank's dropout stream was restored


def test_batch_size_not_divisible_by_the_world_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "odd.json"
    cfg.write_text(json.dumps(config_dict(data={"batch_size": 7})))
    store = tmp_path / "store"
    expected = ("error: data.batch_size 7 is not divisible by the world size 2 (torchrun processes); "
                "use a multiple of 2, e.g. 8")
    for rank in ("0", "1"):  # what each torchrun worker does, without starting a process group
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("LOCAL_RANK", rank)
        assert main([str(cfg), "--store", str(store)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ([expected] if rank == "0" else [])  # one line, from rank 0
        with pytest.raises(DataError, match="not divisible by the world size 2"):
            train(RunConfig.from_dict(config_dict(data={"batch_size": 7})), RunStore(tmp_path / "api").run("odd"))
    assert not store.exists()

    out = torchrun("-m", "scalelab", "train", str(cfg), "--store", str(store), cwd=tmp_path)  # the real launch
    assert out.returncode != 0
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [expected]
    assert not store.exists()


def test_launch_environment() -> None:
    assert distributed.launch_from_env({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) is None
    assert distributed.launch_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Launch(3, 4, 1)
    with pytest.raises(DataError, match="LOCAL_RANK is missing"):
        distributed.launch_from_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(DataError, match="not below WORLD_SIZE"):
        distributed.launch_from_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(DataError, match="not an integer"):
        distributed.launch_from_env({"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    assert [distributed.shard(8, Launch(r, 2, r)) for r in (0, 1)] == [slice(0, 4), slice(4, 8)]
