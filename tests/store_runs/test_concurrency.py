"""Many processes writing one store: separate runs in parallel, one winner per run, kill -9."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from scalelab.store.runs import RunBusyError, RunStore

N_CALLS = 40
SHARED_RECORDS = 20


def write_run(root: str, run_id: str) -> None:
    """A worker: register one run and append N_CALLS batches of two records under its lock."""
    run = RunStore(root).run(run_id)
    run.start({"run": run_id, "seed": 0})
    with run.lock():
        run.set_status("running")
        for step in range(N_CALLS):
            run.append_metrics([
                {"step": step, "metric": "loss", "value": 1.0 / (step + 1), "writer": os.getpid()},
                {"step": step, "metric": "acc", "value": step / N_CALLS, "writer": os.getpid()},
            ])
        run.set_status("finished", step=N_CALLS - 1)


def fight(root: str, barrier: Any, loser_tried: Any, results: Any) -> None:
    """Two of these race for one run; the winner holds the lock until the loser has tried."""
    run = RunStore(root).run("shared")
    run.start({"run": "shared", "seed": 0})
    barrier.wait(timeout=60)
    try:
        lock = run.lock()
    except RunBusyError as exc:
        results.put(("lost", os.getpid(), str(exc)))
        loser_tried.set()
        return
    with lock:
        run.set_status("running")
        for step in range(SHARED_RECORDS):
            run.append_metrics({"step": step, "metric": "loss", "value": 1.0, "writer": os.getpid()})
        loser_tried.wait(timeout=60)
        run.set_status("finished", step=SHARED_RECORDS - 1)
    results.put(("won", os.getpid(), ""))


def test_many_processes_write_one_store(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    store = RunStore(root)
    ctx = mp.get_context("spawn")
    barrier, loser_tried, results = ctx.Barrier(2), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=write_run, args=(root, f"run-{i}")) for i in range(4)]
    procs += [ctx.Process(target=fight, args=(root, barrier, loser_tried, results)) for _ in range(2)]
    for p in procs:
        p.start()
    # read the store while it is being written: never an error, never a corrupt run
    deadline = time.monotonic() + 120
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        for info in store.runs():
            assert info.status in ("pending", "running", "finished"), info
            assert not any("corrupt" in p for p in info.problems), info.problems
        time.sleep(0.05)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    outcomes = sorted(results.get(timeout=10) for _ in range(2))
    (lost, _, message), (won, winner_pid, _) = outcomes
    assert (lost, won) == ("lost", "won")
    assert message.startswith(f"run shared is being run by pid {winner_pid}")

    infos = {info.run_id: info for info in store.runs()}
    assert sorted(infos) == ["run-0", "run-1", "run-2", "run-3", "shared"]
    for i in range(4):
        records = store.run(f"run-{i}").read_metrics()
        keys = [(r["step"], r["metric"]) for r in records]
        assert keys == [(s, m) for s in range(N_CALLS) for m in ("loss", "acc")]  # each once
        assert len({r["writer"] for r in records}) == 1
        assert infos[f"run-{i}"].status == "finished" and infos[f"run-{i}"].problems == ()
    shared = store.run("shared").read_metrics()
    assert [r["step"] for r in shared] == list(range(SHARED_RECORDS))
    assert {r["writer"] for r in shared} == {winner_pid}
    assert len(store.export()) == 4 * 2 * N_CALLS + SHARED_RECORDS


HOLDER = textwrap.dedent(
    """
    import sys, time
    from scalelab.store.runs import RunStore

    run = RunStore(sys.argv[1]).run("victim")
    run.start({"seed": 0})
    lock = run.lock()
    run.set_status("running")
    run.append_metrics([{"step": s, "metric": "loss", "value": 1.0} for s in range(5)])
    with open(run.path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 5, "metric": "lo')  # the write the kill interrupts
    print("ready", flush=True)
    time.sleep(120)
    """
)


def test_sigkill_while_holding_the_lock_reads_as_interrupted(tmp_path: Path) -> None:
    root = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        store = RunStore(root)
        info = store.runs()[0]
        assert (info.status, info.pid, info.n_records) == ("running", proc.pid, 5)
        assert info.problems == ()  # a partial last line of a live writer is not a problem
        run = store.run("victim")
        with pytest.raises(RunBusyError, match=f"run victim is being run by pid {proc.pid}"):
            run.lock()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    info = store.runs()[0]
    assert (info.status, info.stored_status, info.last_step, info.n_records) == (
        "interrupted", "running", 4, 5)
    assert "line 6 (the last) is incomplete" in info.problems[0]
    with run.lock():  # the kernel released the dead process's lock
        run.set_status("running")
        assert run.truncate_metrics(4) == 0
        run.append_metrics([{"step": s, "metric": "loss", "value": 1.0} for s in range(5, 8)])
        run.set_status("finished", step=7)
    assert [r["step"] for r in run.read_metrics()] == list(range(8))
    info = store.runs()[0]
    assert info.status == "finished" and info.problems == ()
