"""The run store: round trip, crash safety of each file, status, and the tidy export."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.fit import fit
from scalelab.store import read_table
from scalelab.store.runs import (
    RECORD_FIELDS,
    RunBusyError,
    RunHandle,
    RunStore,
    collect_provenance,
    flatten_config,
)

REPO = Path(__file__).resolve().parents[2]


def record(step: int, metric: str = "loss", value: float = 1.0, split: str = "eval",
           source: str = "text", tokens_per_step: int = 1000) -> dict:
    tokens = step * tokens_per_step
    return {"step": step, "examples": step * 8, "tokens": tokens, "flops": 6.0 * 1e5 * tokens,
            "split": split, "source": source, "metric": metric, "value": value}


def config(n_layer: int = 2, seed: int = 0, mixture: float = 0.5) -> dict:
    return {"model": {"n_layer": n_layer, "n_embd": 32}, "data": {"mixture": {"text": mixture}},
            "seed": seed, "n_params": 1000 * n_layer, "optim": {"betas": [0.9, 0.95]}}


def status_of(run: RunHandle) -> dict[str, Any]:
    status = run.read_status()
    assert status is not None
    return status


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs")


# ----------------------------------------------------------------------------- basics
def test_round_trip(store: RunStore) -> None:
    run = store.run("tiny-a_s0.1")
    assert not run.exists
    run.start(config(), {"device": "cpu", "seeds": {"init": 0, "data": 1}})
    assert run.exists and run.config() == config() | {"optim": {"betas": [0.9, 0.95]}}
    prov = run.provenance()
    assert prov["device"] == "cpu" and prov["seeds"] == {"init": 0, "data": 1}
    assert prov["packages"]["numpy"] == np.__version__ and "created_at" in prov
    assert status_of(run)["status"] == "pending"
    records = [record(s, value=5.0 / (s + 1)) for s in range(4)]
    records.append(record(3, metric="acc", value=np.float32(0.25), split="eval", source="modadd"))
    with run.lock():
        run.set_status("running")
        run.append_metrics(records[:2])
        run.append_metrics(records[2:])
        run.set_status("finished", step=3)
    got = run.read_metrics()
    assert got == [dict(r, value=float(r["value"])) for r in records] and got.problems == ()
    [info] = store.runs()
    assert (info.run_id, info.id, info.status, info.last_step, info.n_records) == (
        "tiny-a_s0.1", "tiny-a_s0.1", "finished", 3, 5)
    assert info.problems == () and store.problems == () and info.config == run.config()
    status = status_of(run)
    assert status["attempts"] == 1 and status["last_step"] == 3 and "ended_at" in status
    # the store reopens from disk in another object
    assert RunStore(store.root, create=False).run("tiny-a_s0.1").read_metrics() == got


def test_start_again_is_a_noop_and_a_different_config_is_refused(store: RunStore) -> None:
    run = store.run("r")
    run.start(config())
    first = json.loads((run.path / "config.json").read_text())
    with run.lock():
        run.set_status("finished")
    store.run("r").start(config())  # a resumed grid registers the run again
    assert json.loads((run.path / "config.json").read_text()) == first
    assert status_of(run)["status"] == "finished"
    with pytest.raises(DataError, match=r"different config \(model.n_layer: 4 here, 2 stored\)"):
        store.run("r").start(config(n_layer=4))
    with pytest.raises(DataError, match="cannot be saved as JSON"):
        store.run("bad").start({"x": object()})


@pytest.mark.parametrize("bad", ["", ".", "..", ".hidden", "a/b", "a b", "x" * 201, "é"])
def test_invalid_run_ids(store: RunStore, bad: str) -> None:
    with pytest.raises(DataError, match="invalid run id"):
        store.run(bad)


def test_store_root_checks(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        RunStore(tmp_path / "missing", create=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        RunStore(tmp_path / "file")
    assert RunStore(tmp_path / "new" / "deep").root.is_dir()


def test_config_of_an_unstarted_run(store: RunStore) -> None:
    with pytest.raises(DataError, match="has not been started"):
        store.run("nope").config()


def test_invalid_records_are_refused_whole(store: RunStore) -> None:
    run = store.run("r")
    run.start(config())
    bad: list[tuple[dict[str, Any], str]] = [
        ({"metric": "loss", "value": 1.0}, "non-negative integer 'step'"),
        ({"step": -1, "metric": "loss", "value": 1.0}, "non-negative integer 'step'"),
        ({"step": 1.5, "metric": "loss", "value": 1.0}, "non-negative integer 'step'"),
        ({"step": 1, "value": 1.0}, "'metric' name"),
        ({"step": 1, "metric": "loss"}, "no 'value'"),
        ({"step": 1, "metric": "loss", "value": "high"}, "must be a number or null"),
        ({"step": 1, "metric": "loss", "value": 1.0, "extra": [1, 2]}, "field 'extra' holds a list"),
    ]
    for rec, message in bad:
        with pytest.raises(DataError, match=rf"run r: metrics record 1 .*{message}"):
            run.append_metrics([record(0), rec])
    assert run.read_metrics() == []
    run.append_metrics(record(0))  # one mapping is one record; no lock held: taken for the call
    run.append_metrics([{"step": 1, "metric": "loss", "value": None}])
    assert [r["step"] for r in run.read_metrics()] == [0, 1]


# ----------------------------------------------------------------------------- locks
def test_lock_excludes_other_handles_and_nests(store: RunStore) -> None:
    run = store.run("r")
    run.start(config())
    other = store.run("r")
    with run.lock():
        with run.lock():  # the same handle nests
            assert run.locked
        assert run.locked
        with pytest.raises(RunBusyError, match=r"run r is being run by this process \(pid \d+\)"):
            other.lock()
        with pytest.raises(RunBusyError):
            other.append_metrics([record(0)])  # a write takes the lock too
        assert store.runs()[0].status == "running"  # the stored status is still pending
    assert not run.locked
    with other.lock(blocking=True, timeout=1):
        pass


# ----------------------------------------------------------------------------- status
def test_status_lifecycle_and_interrupted(store: RunStore) -> None:
    run = store.run("r")
    run.start(config())
    assert store.runs()[0].status == "pending"
    lock = run.lock()
    run.set_status("running", step=0)
    assert store.runs()[0].status == "running" and store.runs()[0].pid is not None
    lock.release()  # like a crash: status says running, nobody holds the lock
    info = store.runs()[0]
    assert info.status == "interrupted" and info.stored_status == "running"
    with run.lock():
        run.set_status("running")  # resumed
        run.set_status("failed", error="DataError: loss is NaN at step 7", step=7)
    info = store.runs()[0]
    assert (info.status, info.error, info.last_step) == ("failed", "DataError: loss is NaN at step 7", 7)
    assert status_of(run)["attempts"] == 2
    with run.lock():
        run.set_status("running")
        run.set_status("finished")
    assert status_of(run).get("error") is None
    with pytest.raises(DataError, match="unknown status 'done'"):
        run.set_status("done")
    with pytest.raises(DataError, match="recorded automatically"):
        run.set_status("running", pid=3)


def test_damaged_status_and_config_mark_the_run_corrupt(store: RunStore) -> None:
    for rid in ("a", "b", "c"):
        store.run(rid).start(config())
    (store.root / "a" / "status.json").write_text("{not json")
    (store.root / "b" / "config.json").write_text("[1, 2]")
    (store.root / "stray-file.txt").write_text("ignored")
    (store.root / ".hidden").mkdir()
    infos = {info.run_id: info for info in store.runs()}
    assert sorted(infos) == ["a", "b", "c"]
    assert infos["a"].status == "corrupt" and "status.json is not valid JSON" in infos["a"].problems[0]
    assert infos["b"].status == "corrupt" and "config.json holds a JSON list" in infos["b"].problems[0]
    assert infos["c"].status == "pending"
    assert len(store.problems) == 2


# ----------------------------------------------------------------------------- metrics
def test_truncate_on_resume_loses_and_duplicates_nothing(store: RunStore) -> None:
    run = store.run("r")
    run.start(config())
    with run.lock():
        for s in range(10):
            run.append_metrics([record(s), record(s, metric="online_loss", split="train")])
    with open(run.path / "metrics.jsonl", "ab") as fh:
        fh.write(b'{"step": 10, "metric": "lo')  # killed mid-append
    with run.lock():
        assert run.truncate_metrics(5) == 8  # steps 6..9, two records each; the tail goes too
        assert run.read_metrics().problems == ()
        for s in range(6, 12):
            run.append_metrics([record(s), record(s, metric="online_loss", split="train")])
    keys = [(r["step"], r["metric"]) for r in run.read_metrics()]
    assert keys == [(s, m) for s in range(12) for m in ("loss", "online_loss")]
    assert run.truncate_metrics(100) == 0
    assert run.truncate_metrics(-1) == 24 and run.read_metrics() == []
    assert store.run("fresh").truncate_metrics(3) == 0


def test_truncated_last_line_is_dropped_reported_and_repaired(store: RunStore) -> None:
    run = store.run("r")
    run.start(config())
    run.append_metrics([record(0), record(1)])
    path = run.path / "metrics.jsonl"
    with open(path, "ab") as fh:
        fh.write(b'{"step": 2, "examples": 16, "tok')
    got = run.read_metrics()
    assert [r["step"] for r in got] == [0, 1]
    assert len(got.problems) == 1 and "line 3 (the last) is incomplete" in got.problems[0]
    [info] = store.runs()
    assert info.status == "pending" and info.n_records == 2 and "line 3" in info.problems[0]
    run.append_metrics([record(2)])  # appending cuts the incomplete line first
    got = run.read_metrics()
    assert [r["step"] for r in got] == [0, 1, 2] and got.problems == ()
    # a complete last record without its newline (hand-written) is kept, not cut
    with open(path, "ab") as fh:
        fh.write(json.dumps(record(3)).encode())
    assert [r["step"] for r in run.read_metrics()] == [0, 1, 2, 3]
    run.append_metrics([record(4)])
    assert [r["step"] for r in run.read_metrics()] == [0, 1, 2, 3, 4]
    # NUL garbage after a power loss is an incomplete tail too
    with open(path, "ab") as fh:
        fh.write(b"\x00" * 64)
    got = run.read_metrics()
    assert len(got) == 5 and "(the last)" in got.problems[0]


def test_corrupt_middle_line_marks_only_that_run(store: RunStore) -> None:
    good, bad = store.run("good"), store.run("bad")
    for run in (good, bad):
        run.start(config(n_layer=2 if run is good else 4))
        run.append_metrics([record(s, value=3.0 - 0.1 * s) for s in range(4)])
    path = bad.path / "metrics.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:20] + "###" + lines[1][20:]
    path.write_text("\n".join(lines) + "\n")
    before = path.read_bytes()
    with pytest.raises(DataError, match=r"run bad: metrics.jsonl line 2 is corrupt: it is not valid JSON"):
        bad.read_metrics()
    with pytest.raises(DataError, match="line 2 is corrupt"):
        bad.truncate_metrics(1)
    assert path.read_bytes() == before  # nothing changed
    infos = {info.run_id: info for info in store.runs()}
    assert infos["bad"].status == "corrupt" and "line 2" in infos["bad"].problems[0]
    assert infos["good"].status == "pending" and infos["good"].problems == ()
    table = store.export()
    assert set(table["run"]) == {"good"} and len(table) == 4
    assert any("left out 1 corrupt run(s): bad" in p for p in store.problems)
    assert any("line 2 is corrupt" in p for p in store.problems)


# ----------------------------------------------------------------------------- checkpoints
class Opaque:
    """Picklable, but not something weights_only=True loads."""


def _training_state() -> tuple[dict, Any]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))
    for _ in range(3):
        loss = model(torch.randn(5, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    gen = torch.Generator().manual_seed(7)
    state = {
        "step": 3,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "generator": gen.get_state(),
                "numpy": np.random.default_rng(3).bit_generator.state},
        "config": config(),
    }
    return state, torch


def _same(a: object, b: object, torch: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k], torch) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y, torch) for x, y in zip(a, b, strict=True))
    return a == b


def test_checkpoint_round_trip_and_crash_safety(store: RunStore) -> None:
    state, torch = _training_state()
    run = store.run("r")
    run.start(config())
    assert run.load_checkpoint() is None
    with run.lock():
        run.save_checkpoint(state)
    loaded = run.load_checkpoint()
    assert loaded is not None
    assert _same(state, loaded, torch)
    gen = torch.Generator()
    gen.set_state(loaded["rng"]["generator"])
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=torch.Generator().manual_seed(7)))

    # a crash mid-save leaves a stray temporary file: the previous checkpoint still loads
    stray = run.path / ".checkpoint.pt.crashed.tmp"
    stray.write_bytes(b"PK\x03\x04 half a zip")
    assert _same(state, run.load_checkpoint(), torch)
    assert store.runs()[0].problems == ()
    # a failed save keeps the old checkpoint: a state weights_only could not load back ...
    with pytest.raises(DataError, match="cannot be loaded with weights_only=True"):
        run.save_checkpoint({"step": 4, "thing": Opaque()})
    # ... or one that cannot be pickled at all
    with pytest.raises(DataError, match="cannot be saved"):
        run.save_checkpoint({"step": 4, "fn": lambda: 0})
    assert (run.load_checkpoint() or {})["step"] == 3
    # the next save under the lock clears the leftovers
    run.save_checkpoint({**state, "step": 5})
    assert (run.load_checkpoint() or {})["step"] == 5
    assert sorted(p.name for p in run.path.iterdir() if p.name.endswith(".tmp")) == []


def test_unloadable_checkpoint_is_a_clear_error(store: RunStore) -> None:
    pytest.importorskip("torch")
    run = store.run("r")
    run.start(config())
    run.checkpoint_path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"run r cannot be loaded .*delete .*checkpoint.pt"):
        run.load_checkpoint()
    with pytest.raises(DataError, match="must be a dict"):
        run.save_checkpoint([1, 2])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- provenance
def test_provenance_git_hash_without_failing(tmp_path: Path) -> None:
    inside = collect_provenance(cwd=REPO, device="cpu", seeds={"init": 1})
    if inside["git"] is not None:  # the CI checkout is a git repository; a tarball is not
        assert len(inside["git"]["commit"]) == 40 and isinstance(inside["git"]["dirty"], bool)
    outside = collect_provenance(cwd=tmp_path)
    assert outside["git"] is None and "device" not in outside
    assert inside["device"] == "cpu" and inside["seeds"] == {"init": 1}


def test_provenance_without_git_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    assert collect_provenance(cwd=REPO)["git"] is None


# ----------------------------------------------------------------------------- export
def _grid(store: RunStore, with_noise: bool = True) -> tuple[float, float, float]:
    """Four runs whose eval loss follows L = E + A tokens^-alpha, plus other records."""
    E, A, alpha = 1.7, 40.0, 0.3
    rng = np.random.default_rng(0)
    for i, (n_layer, seed) in enumerate([(2, 0), (2, 1), (4, 0), (4, 1)]):
        run = store.run(f"size{n_layer}-s{seed}")
        run.start(config(n_layer=n_layer, seed=seed))
        per_step = 1000 * (i + 1)
        with run.lock():
            run.set_status("running")
            for s in [0, 1, 2, 4, 8, 16, 32, 64, 128, 256]:
                tokens = s * per_step
                loss = E + A * tokens ** -alpha if tokens else 11.0
                noise = math.exp(rng.normal(0, 0.003)) if with_noise else 1.0
                run.append_metrics([
                    record(s, value=loss * noise, tokens_per_step=per_step),
                    record(s, metric="acc", value=min(1.0, s / 100), source="modadd",
                           tokens_per_step=per_step),
                    record(s, metric="online_loss", split="train", value=loss + 0.2,
                           tokens_per_step=per_step),
                ])
            run.set_status("finished", step=256)
    return E, A, alpha


def test_export_columns_and_config_selection(store: RunStore) -> None:
    _grid(store)
    table = store.export()
    assert len(table) == 4 * 10 * 3
    assert table.columns == ("run", "status", "model.n_layer", "seed", "n_params", *RECORD_FIELDS)
    assert set(table["status"]) == {"finished"}
    assert sorted(set(table["model.n_layer"])) == [2.0, 4.0]
    every = store.export(config_columns="all")
    assert "model.n_embd" in every.columns and "optim.betas" in every.columns
    assert set(every["optim.betas"]) == {"[0.9,0.95]"}
    chosen = store.export(config_columns=["data.mixture.text"])
    assert chosen.columns[:3] == ("run", "status", "data.mixture.text")
    with pytest.raises(DataError, match=r"unknown config column 'model.n_layers' \(did you mean 'model.n_layer'\?\)"):
        store.export(config_columns=["model.n_layers"])


def test_export_renames_clashing_config_keys_and_keeps_extra_fields(store: RunStore) -> None:
    run = store.run("r")
    run.start({"metric": "loss", "step": {"size": 2}})
    run.append_metrics([{"step": 0, "metric": "loss", "value": 1.0, "skill": "lego/1"}])
    table = store.export(config_columns="all")
    assert table.columns == ("run", "status", "config.metric", "step.size", *RECORD_FIELDS, "skill")
    assert table["skill"][0] == "lego/1" and math.isnan(table["tokens"][0])


def test_empty_store_export(store: RunStore, tmp_path: Path) -> None:
    assert len(store.export()) == 0
    with pytest.raises(DataError, match="no metrics records to export"):
        store.export(tmp_path / "out.csv")
    for bad, message in [("out.xlsx", "use a .csv or .parquet"), ("nodir/out.csv", "does not exist")]:
        with pytest.raises(DataError, match=message):
            store.export(tmp_path / bad)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_file_feeds_read_table_and_fit(store: RunStore, tmp_path: Path, suffix: str) -> None:
    E, _, alpha = _grid(store)
    out = tmp_path / f"runs{suffix}"
    table = store.export(out)
    back = read_table(out)
    assert back.columns == table.columns and len(back) == len(table)
    assert back.fingerprint() == table.fingerprint()
    res = fit("power_law", str(out), x={"x": "tokens"}, y="value",
             where="metric == 'loss' and split == 'eval' and tokens > 0", seed=0)
    assert res.n_points == 4 * 9
    assert res.params["alpha"].value == pytest.approx(alpha, rel=0.05)
    assert res.params["E"].value == pytest.approx(E, rel=0.02)


def test_flatten_config() -> None:
    flat = flatten_config({"a": {"b": {"c": 1}, "d": [1, {"e": 2}]}, "f": None, "g": {}})
    assert flat == {"a.b.c": 1, "a.d": '[1,{"e":2}]', "f": None}
