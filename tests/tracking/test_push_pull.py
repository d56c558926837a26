"""Push and pull against a fake W&B server driven by the real wandb client.

* live logging online, then ``push`` twice: one W&B run per store run, no step twice;
* push -> pull round trip: the pulled store has the original records, config and status;
* pull real runs logged by another tool (the OLMo ladder's c4 losses) with a server-side filter,
  export, ``scalelab fit`` through the CLI: the same Chinchilla fit as on the original CSV;
* push the fit: parameter, curve and data tables and an image, once.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from scalelab.cli.cmd_runs import main as runs_main
from scalelab.cli.cmd_wandb import main as wandb_main
from scalelab.cli.commands import add_fit
from scalelab.cli.main import run_commands
from scalelab.harness.config import RunConfig
from scalelab.harness.trainer import train
from scalelab.store.runs import RunStore
from tests.tracking.conftest import DUMMY_KEY, scan_for_key
from tests.tracking.fake_server import FakeRun, FakeWandb

wandb = pytest.importorskip("wandb")
pytest.importorskip("pyarrow")  # the fake server serves history as Parquet, like W&B

RUN: dict[str, Any] = {
    "steps": 12, "checkpoint_every": 6, "device": "cpu",
    "model": {"size": "tiny"}, "optim": {"lr": 3e-3},
    "eval": {"count": 4, "max_examples": 32},
    "data": {"seq_len": 12, "batch_size": 8,
             "sources": {"modadd": {"kind": "modular", "options": {"p": 7, "train_fraction": 0.8}}}},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def canonical(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (r["step"], r.get("split", ""), r.get("source", ""), r["metric"]))


def steps_of(run: FakeRun) -> list[int]:
    return [int(row["_step"]) for row in run.history]


def test_live_online_then_push_twice_then_pull_round_trip(tmp_path: Path, fake_wandb: FakeWandb,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    store = RunStore(tmp_path / "store")
    live = RunConfig.from_dict({**copy.deepcopy(RUN), "tracking": {"wandb": {"project": "p", "mode": "online"}}})
    train(live, store.run("live"))
    train(RunConfig.from_dict({**copy.deepcopy(RUN), "init_seed": 1}), store.run("quiet"))  # not logged live
    wandb.teardown()
    [logged] = fake_wandb.runs("ent", "p")
    assert logged.config["scalelab"]["run_id"] == "live" and logged.state == "finished"
    stored_steps = sorted({r["step"] for r in store.run("live").read_metrics()})
    assert steps_of(logged) == stored_steps  # one row per trainer step, W&B _step = step

    root = str(tmp_path / "store")
    assert wandb_main(["wandb", "push", root, "--project", "p", "--entity", "ent"]) == 0
    assert "2 runs (13 new steps)" in capsys.readouterr().out  # "quiet" only: steps 0..12; "live" had all
    assert wandb_main(["wandb", "push", root, "--project", "p", "--entity", "ent"]) == 0
    assert "2 runs (0 new steps)" in capsys.readouterr().out
    runs = {r.config["scalelab"]["run_id"]: r for r in fake_wandb.runs("ent", "p")}
    assert sorted(runs) == ["live", "quiet"]  # no duplicate runs
    for name, wrun in runs.items():
        steps = steps_of(wrun)
        assert steps == sorted({r["step"] for r in store.run(name).read_metrics()})  # no step twice
        assert wrun.summary["scalelab/status"] == "finished"

    back = tmp_path / "back"
    assert wandb_main(["wandb", "pull", "ent/p", "-o", str(back), "--filter", "config.init_seed=0"]) == 0
    assert "pulled 1 runs" in capsys.readouterr().out
    pulled = RunStore(back)
    assert pulled.run_ids() == ["live"]
    assert canonical(pulled.run("live").read_metrics()) == canonical(store.run("live").read_metrics())
    assert pulled.run("live").config() == store.run("live").config()
    assert pulled.runs()[0].status == "finished"
    assert wandb_main(["wandb", "pull", "ent/p", "-o", str(back)]) == 0  # again, and the other run
    assert "(" + str(len(store.run("quiet").read_metrics())) + " new records)" in capsys.readouterr().out
    assert fake_wandb.unknown == [] and fake_wandb.rejected == 0
    assert scan_for_key(tmp_path) == []


def ladder_runs(shared_data: Path) -> list[FakeRun]:
    """The OLMo ladder's c4_en validation losses as W&B runs, logged the way OLMo logs them."""
    by_run: dict[str, list[dict[str, str]]] = defaultdict(list)
    with open(shared_data / "olmo_ladder_ce_losses_long.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["metric"] == "c4_en" and row["is_rerun"] == "0" and row["step"]:
                by_run[row["run"]].append(row)
    runs = []
    for name, rows in by_run.items():
        first = rows[0]
        config = {"kind": first["kind"], "size": first["size"], "n_params": int(first["n_params"])}
        if first["chinchilla_multiple"]:
            config["chinchilla_multiple"] = float(first["chinchilla_multiple"])
        history = sorted(({"_step": int(r["step"]), "tokens": int(r["tokens"]), "flops": float(r["compute_flops"]),
                           "eval/c4_en-validation/CrossEntropyLoss": float(r["value"]), "_runtime": 1.0}
                          for r in rows), key=lambda h: h["_step"])
        runs.append(FakeRun("olmo", "ladder", name.replace(".", "_"), config=config, history=history,
                            display_name=name))
    return runs


FIT_ARGS = ["--law", "chinchilla", "--x", "N=n_params", "--x", "D=tokens", "--y", "value", "--quiet"]


def fit_main(argv: list[str]) -> int:
    """``scalelab fit`` (Chinchilla L(N, D) on the runs' final losses) through its CLI parser."""
    return run_commands(["fit", argv[0], *FIT_ARGS, *argv[1:]], add_fit)


def test_pull_runs_logged_elsewhere_then_fit_through_the_cli(tmp_path: Path, fake_wandb: FakeWandb,
                                                            shared_data: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    for run in ladder_runs(shared_data):
        fake_wandb.add_run(run)
    assert len(fake_wandb.runs("olmo", "ladder")) == 28  # 25 ladder runs, three 7B / 13B target runs
    root = tmp_path / "pulled"
    assert wandb_main(["wandb", "pull", "olmo/ladder", "--filter", "config.kind=ladder", "-o", str(root)]) == 0
    assert "pulled 25 runs" in capsys.readouterr().out  # the server applied the filter
    assert runs_main(["runs", str(root), "--export", str(tmp_path / "runs.csv")]) == 0
    assert "25 runs: 25 finished" in capsys.readouterr().out

    # the final checkpoint of each run: 5 sizes x 5 token multiples
    final = "tokens >= 0.999 * 20 * chinchilla_multiple * n_params"
    ours = tmp_path / "fit.json"
    assert fit_main([str(tmp_path / "runs.csv"), "--json", str(ours), "--where",
                     f"metric == 'CrossEntropyLoss' and source == 'c4_en-validation' and {final}"]) == 0
    direct = tmp_path / "direct.json"
    assert fit_main([str(shared_data / "olmo_ladder_ce_losses_long.csv"), "--json", str(direct), "--where",
                     f"kind == 'ladder' and is_rerun == 0 and metric == 'c4_en' and {final}"]) == 0
    a, b = json.loads(ours.read_text()), json.loads(direct.read_text())
    assert a["n_points"] == b["n_points"] == 25
    values = {k: v["value"] for k, v in a["params"].items()}
    for name, value in values.items():  # the same data -> the same fit
        assert value == pytest.approx(b["params"][name]["value"], rel=1e-6)
    # measured: E 1.8586, A 124.41, B 33.780, alpha 0.27183, beta 0.15656 (RMSE 0.018)
    assert values == pytest.approx({"E": 1.8586, "A": 124.41, "B": 33.780, "alpha": 0.27183,
                                    "beta": 0.15656}, rel=2e-3)

    # push the fit: tables and an image, once
    assert wandb_main(["wandb", "push", str(root), "--project", "fits", "--entity", "ent", "--no-runs",
                       "--fit", str(ours)]) == 0
    assert "1 fits (1 new)" in capsys.readouterr().out
    [fit_run] = fake_wandb.runs("ent", "fits")
    assert fit_run.config["law"] == "chinchilla" and fit_run.summary["param/alpha"] == pytest.approx(values["alpha"])
    media = Counter(name.split("/")[1] for name in fit_run.files if name.startswith("media/"))
    plot = importlib.util.find_spec("matplotlib") is not None  # the image needs scalelab[plot]
    assert media == ({"table": 3, "images": 1} if plot else {"table": 3})  # params, curve, points; plot
    curve = json.loads(next(v for k, v in fit_run.files.items() if "curve" in k and k.endswith(".table.json")))
    assert curve["columns"] == ["N", "D", "value (fit)", "lower", "upper", "extrapolated"]
    assert sum(row[-1] for row in curve["data"]) > 0  # it extrapolates past the largest run
    points = json.loads(next(v for k, v in fit_run.files.items() if "points" in k and k.endswith(".table.json")))
    assert len(points["data"]) == 25
    assert any(a["type"] == "run_table" and a["state"] == "COMMITTED" for a in fake_wandb.artifacts.values())
    assert wandb_main(["wandb", "push", str(root), "--project", "fits", "--entity", "ent", "--no-runs",
                       "--fit", str(ours)]) == 0
    assert "1 fits (0 new)" in capsys.readouterr().out
    assert len(fake_wandb.runs("ent", "fits")) == 1 and len(fit_run.history) == 1
    assert fake_wandb.unknown == [] and fake_wandb.rejected == 0
    assert scan_for_key(tmp_path) == []


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["pull", "justaproject", "-o", "{tmp}/o"], {}, "is not ENTITY/PROJECT"),
        (["pull", "ent/p", "-o", "{tmp}/o", "--filter", "size"], {}, "is not KEY=VALUE or a JSON object"),
        (["pull", "ent/empty", "-o", "{tmp}/o"], {}, "no runs in ent/empty match the filters {}"),
        (["pull", "ent/p", "-o", "{tmp}/o"], {"WANDB_API_KEY": "x" * 40}, "cannot connect to W&B at http://127.0.0.1"),
        (["pull", "ent/p", "-o", "{tmp}/o"], {"WANDB_API_KEY": ""}, "no W&B API key: set WANDB_API_KEY"),
        (["push", "{tmp}/nowhere", "--project", "p"], {}, "run store '{tmp}/nowhere' not found"),
        (["push", "{tmp}", "--project", "p", "--no-runs"], {}, "--no-runs with no --fit"),
        (["import-offline", "{tmp}", "-o", "{tmp}/o"], {}, "no W&B run logs (run-*.wandb) in '{tmp}'"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path: Path, fake_wandb: FakeWandb,
                                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                               argv: list[str], env: dict[str, str], fragment: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert wandb_main(["wandb", *(a.replace("{tmp}", str(tmp_path)) for a in argv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment.replace("{tmp}", str(tmp_path)) in err[0], err
    assert DUMMY_KEY not in err[0] and "x" * 40 not in err[0]
