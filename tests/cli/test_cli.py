"""The CLI through its real entry point (`python -m scalelab`), including bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIT = ["fit", "chinchilla", "--law", "chinchilla", "--x", "N=params_N", "--x", "D=tokens_D",
       "--y", "loss", "--where", "excluded_by_epoch == 0"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scalelab", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_clean_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("...")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


def test_version_and_help_do_not_import_heavy_modules() -> None:
    code = (
        "import sys; from scalelab.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('numpy', 'scipy', 'torch', 'lmfit', 'pandas') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("scalelab ")


def test_fit_predict_optimal_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "fit.json"
    proc = run(*FIT, "--bootstrap", "200", "--json", str(out), "--at", "N=70e9", "D=1.4e12")
    assert proc.returncode == 0, proc.stderr
    assert "alpha" in proc.stdout and "95% low" in proc.stdout
    d = json.loads(out.read_text())
    assert d["law"] == "chinchilla" and d["n_points"] == 240 and d["converged"] is True
    for name in ("E", "A", "B", "alpha", "beta"):
        assert set(d["params"][name]) >= {"value", "stderr", "ci_low", "ci_high"}
    assert d["objective"] <= 0.0010183 and d["seconds"] > 0

    pred_json = tmp_path / "pred.json"
    proc = run("predict", str(out), "--at", "N=70e9,1e11", "D=1.4e12,2e12", "--json", str(pred_json))
    assert proc.returncode == 0, proc.stderr
    preds = json.loads(pred_json.read_text())["predictions"]
    assert len(preds) == 2
    for p in preds:
        assert p["lower"] < p["mean"] < p["upper"]
    assert "extrapolating" in proc.stdout

    plan_json = tmp_path / "plan.json"
    proc = run("optimal", str(out), "--compute", "5.88e23", "--json", str(plan_json))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(plan_json.read_text())["plans"][0]
    assert plan["tokens_per_param"]["value"] == pytest.approx(18, abs=0.7)
    assert plan["N"]["ci_low"] < plan["N"]["value"] < plan["N"]["ci_high"]


def test_fit_reads_csv_jsonl_and_parquet(tmp_path: Path) -> None:
    rows = [{"x": 10.0**k, "loss": 2.0 + 30 * (10.0**k) ** -0.4} for k in range(2, 9)]
    csv = tmp_path / "runs.csv"
    csv.write_text("x,loss\n" + "".join(f"{r['x']},{r['loss']}\n" for r in rows))
    jsonl = tmp_path / "runs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [r["x"] for r in rows], "loss": [r["loss"] for r in rows]}),
                   tmp_path / "runs.parquet")
    values = []
    for name in ("runs.csv", "runs.jsonl", "runs.parquet"):
        out = tmp_path / f"{name}.json"
        proc = run("fit", str(tmp_path / name), "--law", "power_law", "--y", "loss", "--loss", "mse",
                   "--json", str(out), "--quiet")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == ""
        values.append(json.loads(out.read_text())["params"]["alpha"]["value"])
    assert values[0] == pytest.approx(0.4, rel=1e-6)
    assert values[0] == pytest.approx(values[1]) == pytest.approx(values[2])


def test_laws_and_datasets_listings() -> None:
    proc = run("laws")
    assert proc.returncode == 0
    for name in ("chinchilla", "kaplan", "power_law", "broken_power_law", "sigmoid",
                 "data_constrained", "data_mixing"):
        assert name in proc.stdout
    proc = run("datasets")
    assert proc.returncode == 0 and "chinchilla" in proc.stdout and "Hoffmann" in proc.stdout


@pytest.fixture
def bad_files(tmp_path: Path) -> Path:
    (tmp_path / "nan.csv").write_text("N,D,loss\n1e8,1e9,nan\n2e8,2e9,3.0\n4e8,4e9,2.9\n8e8,8e9,2.8\n"
                                      "1e9,1e10,2.7\n2e9,2e10,2.6\n4e9,4e10,2.5\n")
    (tmp_path / "neg.csv").write_text("N,D,loss\n1e8,1e9,-1\n2e8,2e9,3.0\n4e8,4e9,2.9\n8e8,8e9,2.8\n"
                                      "1e9,1e10,2.7\n2e9,2e10,2.6\n4e9,4e10,2.5\n")
    (tmp_path / "few.csv").write_text("N,D,loss\n1e8,1e9,3\n2e8,2e9,2.9\n")
    (tmp_path / "ragged.csv").write_text("N,D,loss\n1e8,1e9,3\n2e8,2e9\n")
    (tmp_path / "bad.jsonl").write_text('{"N": 1, "D": 2, "loss": 3}\n{"N": 2, "D":\n')
    (tmp_path / "binary.csv").write_bytes(b"\x00\xff\xfe\x80" * 50)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "fit.json").write_text("{not json")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["fit", "nan.csv", "--law", "chinchilla", "--y", "loss"], ["loss", "NaN"]),
        (["fit", "neg.csv", "--law", "chinchilla", "--y", "loss"], ["loss", "non-positive"]),
        (["fit", "few.csv", "--law", "chinchilla", "--y", "loss"], ["2 data point", "5 free parameter"]),
        (["fit", "ragged.csv", "--law", "chinchilla", "--y", "loss"], ["ragged.csv"]),
        (["fit", "bad.jsonl", "--law", "chinchilla", "--y", "loss"], ["line 2"]),
        (["fit", "binary.csv", "--law", "chinchilla", "--y", "loss"], ["binary.csv"]),
        (["fit", "empty.csv", "--law", "chinchilla", "--y", "loss"], ["empty"]),
        (["fit", "missing.csv", "--law", "chinchilla", "--y", "loss"], ["missing.csv", "not found"]),
        (["fit", "chinchilla", "--law", "chinchilla", "--x", "N=parms", "--x", "D=tokens_D", "--y", "loss"],
         ["unknown column 'parms'"]),
        (["fit", "chinchilla", "--law", "chinchilla", "--x", "N=params_N", "--x", "D=tokens_D",
          "--y", "loss", "--where", "loss > 100"], ["matched none"]),
        (["fit", "chinchilla", "--law", "chinchila", "--y", "loss"], ["unknown law 'chinchila'"]),
        (["fit", "chinchilla", "--law", "chinchilla", "--x", "N=params_N", "--x", "D=tokens_D",
          "--y", "loss", "--where", "loss >"], ["loss >"]),
        (["fit", "chinchilla", "--law", "chinchilla", "--x", "N=params_N", "--x", "D=tokens_D",
          "--y", "loss", "--fix", "gamma=1"], ["unknown parameter", "gamma"]),
        (["fit", "chinchilla", "--law", "chinchilla", "--y", "loss", "--bootstrap", "x"], ["--bootstrap"]),
        (["predict", "fit.json", "--at", "N=1e9", "D=1e10"], ["not valid JSON"]),
        (["predict", "nofit.json", "--at", "N=1e9"], ["not found"]),
        (["fit", "chinchilla", "--law", "chinchilla", "--x", "N=params_N", "--x", "D=tokens_D",
          "--y", "loss", "--at", "N=abc"], ["--at", "abc"]),
    ],
)
def test_bad_input_gives_one_line_error(bad_files: Path, args: list[str], fragments: list[str]) -> None:
    assert_clean_error(run(*args, cwd=bad_files), *fragments)


def test_optimal_needs_an_n_d_law(tmp_path: Path) -> None:
    out = tmp_path / "pl.json"
    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"{10.0**k},{2 + 10 * (10.0**k) ** -0.3}\n" for k in range(1, 8)))
    assert run("fit", str(data), "--law", "power_law", "--y", "y", "--json", str(out), "--quiet").returncode == 0
    assert_clean_error(run("optimal", str(out), "--compute", "1e20"), "no compute-optimal allocation")


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    out = tmp_path / "fit.json"
    out.write_text("previous")
    proc = run(*FIT, "--json", str(tmp_path / "no" / "such" / "dir" / "fit.json"))
    assert_clean_error(proc, "does not exist")
    assert out.read_text() == "previous"
