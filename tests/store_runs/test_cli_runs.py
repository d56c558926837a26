"""`scalelab runs ROOT`: listing, export, JSON, and bad input as one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab.cli.cmd_runs import main
from scalelab.store import read_table
from scalelab.store.runs import RunStore


def make_store(root: Path) -> RunStore:
    store = RunStore(root)
    for n_layer in (2, 4):
        run = store.run(f"size{n_layer}")
        run.start({"model": {"n_layer": n_layer}, "seed": 0})
        with run.lock():
            run.set_status("running")
            run.append_metrics([
                {"step": s, "examples": 8 * s, "tokens": 1000 * s * n_layer, "flops": 6e8 * s,
                 "split": "eval", "source": "text", "metric": "loss",
                 "value": 1.5 + 30 * (1000 * s * n_layer) ** -0.3}
                for s in (1, 2, 4, 8, 16, 32, 64)
            ])
            run.set_status("finished" if n_layer == 2 else "failed", step=64, error="boom: NaN loss")
    crashed = store.run("crashed")
    crashed.start({"model": {"n_layer": 8}, "seed": 0})
    with crashed.lock():
        crashed.set_status("running")
        crashed.append_metrics({"step": 0, "metric": "loss", "value": 9.0})
    with open(crashed.path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 1, "met')
    broken = store.run("broken")
    broken.start({"model": {"n_layer": 16}, "seed": 0})
    broken.append_metrics([{"step": s, "metric": "loss", "value": 1.0} for s in range(3)])
    text = (broken.path / "metrics.jsonl").read_text().splitlines()
    (broken.path / "metrics.jsonl").write_text("\n".join([text[0], "{oops", *text[1:]]) + "\n")
    return store


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_listing_reports_status_and_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_store(tmp_path / "s")
    assert main(["runs", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:5]}
    assert rows["size2"][1:4] == ["finished", "64", "7"]
    assert rows["size4"][1:4] == ["failed", "64", "7"] and "boom: NaN loss" in out
    assert rows["crashed"][1:4] == ["interrupted", "0", "1"]
    assert rows["broken"][1] == "corrupt"
    assert "4 runs: 1 corrupt, 1 failed, 1 finished, 1 interrupted" in out
    assert "run broken: metrics.jsonl line 2 is corrupt" in out
    assert "run crashed: metrics.jsonl line 2 (the last) is incomplete" in out


def test_json_listing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_store(tmp_path / "s")
    assert main(["runs", str(tmp_path / "s"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    by_id = {r["run_id"]: r for r in payload["runs"]}
    assert by_id["size4"]["error"] == "boom: NaN loss" and by_id["size2"]["config"]["model"] == {"n_layer": 2}
    assert by_id["broken"]["status"] == "corrupt" and len(payload["problems"]) == 2
    assert payload["export"] is None


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_then_fit_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str) -> None:
    make_store(tmp_path / "s")
    out = tmp_path / f"runs{suffix}"
    assert main(["runs", str(tmp_path / "s"), "--export", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["export"]["rows"] == 15 and payload["export"]["runs"] == 3
    assert any("left out 1 corrupt run(s): broken" in p for p in payload["problems"])
    table = read_table(out)
    assert table.columns[:4] == ("run", "status", "model.n_layer", "seed")
    assert sorted(set(table["run"])) == ["crashed", "size2", "size4"]

    from scalelab.cli.main import main as scalelab_main

    fit_json = tmp_path / "fit.json"
    code = scalelab_main(["fit", str(out), "--law", "power_law", "--x", "x=tokens", "--y", "value",
                          "--where", "metric == 'loss' and split == 'eval' and tokens > 0",
                          "--json", str(fit_json), "--quiet"])
    assert code == 0, capsys.readouterr().err
    fitted = json.loads(fit_json.read_text())
    assert fitted["n_points"] == 14
    assert fitted["params"]["alpha"]["value"] == pytest.approx(0.3, rel=0.02)


def test_export_config_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_store(tmp_path / "s")
    out = tmp_path / "runs.csv"
    assert main(["runs", str(tmp_path / "s"), "--export", str(out), "--config-columns", "seed"]) == 0
    assert "wrote " in capsys.readouterr().out
    assert read_table(out).columns[:3] == ("run", "status", "seed")
    assert main(["runs", str(tmp_path / "s"), "--export", str(out), "--config-columns", "model.layers"]) == 2
    assert "unknown config column 'model.layers'" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["{tmp}/missing"], "run store '{tmp}/missing' not found"),
        (["{tmp}/file.txt"], "is a file, not a directory"),
        (["{tmp}/s", "--export", "{tmp}/out.xlsx"], "use a .csv or .parquet file name"),
        (["{tmp}/s", "--export", "{tmp}/nodir/out.csv"], "does not exist"),
        (["{tmp}/empty", "--export", "{tmp}/out.csv"], "no metrics records to export"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     args: list[str], fragment: str) -> None:
    make_store(tmp_path / "s")
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    argv = ["runs", *(a.format(tmp=tmp_path) for a in args)]
    assert main(argv) == 2
    assert fragment.format(tmp=tmp_path) in one_error_line(capsys)


def test_empty_store_lists_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty")]) == 0
    assert "no runs in" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["runs"])
    assert exc.value.code == 2
    assert one_error_line(capsys).startswith("error: the following arguments are required: ROOT")


def test_module_import_is_light() -> None:
    code = ("import sys, scalelab.cli.cmd_runs\n"
            "print([m for m in ('numpy', 'torch', 'pyarrow', 'scipy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
