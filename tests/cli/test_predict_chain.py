"""`scalelab predict` on chains of fits, through the real entry point (`python -m scalelab`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scalelab.fit import fit
from scalelab.predict.chain import Chain


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scalelab", *args], capture_output=True,
                          text=True, timeout=300)


def assert_clean_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Step 1 (task loss of N, D), step 2 (accuracy of task loss) and their chain, as JSON."""
    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(5e7, 1e9, 4), 4)
    d = n * np.tile([10.0, 20.0, 50.0, 100.0], 4)
    loss = (0.6 + 40.0 / n**0.25 + 90.0 / d**0.22) * np.exp(rng.normal(0, 0.01, n.size))
    s1 = fit("chinchilla", {"N": n, "D": d, "bpb": loss}, y="bpb", bootstrap=40, seed=1)
    x = np.geomspace(0.8, 3.0, 80)
    acc = (0.9 - 0.65 / (1 + np.exp(-(np.log(x) - np.log(1.1)) / 0.25))) * np.exp(
        rng.normal(0, 0.01, x.size))
    s2 = fit("sigmoid", {"x": x, "acc": acc}, y="acc", fixed={"ceiling": 0.25},
             bounds={"floor": (0.25, 1.0)}, bootstrap=40, seed=2)
    folder = tmp_path_factory.mktemp("chain")
    out = {"step1": folder / "step1.json", "step2": folder / "step2.json",
           "chain": folder / "chain.json"}
    s1.save(out["step1"])
    s2.save(out["step2"])
    Chain.two_step(s1, s2, chance=0.25, target="accuracy").save(out["chain"])
    return out


def test_predict_reads_a_chain(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "pred.json"
    proc = run("predict", str(files["chain"]), "--at", "N=3e9,1e10", "D=6e10,2e11",
               "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "two-step chain -> accuracy" in proc.stdout
    assert "stage 1: bpb = chinchilla" in proc.stdout and "stage 2: acc = sigmoid(x = bpb)" in proc.stdout
    assert "95% low" in proc.stdout and "observation noise" in proc.stdout
    assert "extrapolating" in proc.stdout
    d = json.loads(out.read_text())
    assert d["chain"] == "two-step" and d["target"] == "accuracy" and d["noise"] is True
    chain = Chain.load(files["chain"])
    expected = chain.predict(N=[3e9, 1e10], D=[6e10, 2e11], seed=0)
    assert len(d["predictions"]) == 2
    for row, mean, lo, hi in zip(d["predictions"], expected.mean, expected.lower, expected.upper,
                                 strict=True):
        assert row["mean"] == pytest.approx(mean, rel=1e-12)
        assert row["lower"] == pytest.approx(lo, rel=1e-12)
        assert row["upper"] == pytest.approx(hi, rel=1e-12)
        assert 0 <= row["lower"] < row["mean"] < row["upper"] <= 1
        assert row["bpb"] > 0

    quiet = tmp_path / "curves.json"
    proc = run("predict", str(files["chain"]), "--at", "N=3e9", "D=6e10", "--no-noise",
               "--coverage", "0.8", "--json", str(quiet))
    assert proc.returncode == 0, proc.stderr
    row = json.loads(quiet.read_text())["predictions"][0]
    wide = d["predictions"][0]
    assert row["upper"] - row["lower"] < wide["upper"] - wide["lower"]


def test_then_chains_two_fit_files(files: dict[str, Path], tmp_path: Path) -> None:
    saved = tmp_path / "made.json"
    proc = run("predict", str(files["step1"]), "--then", str(files["step2"]), "--chance", "0.25",
               "--at", "N=3e9", "D=6e10", "--save-chain", str(saved))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {saved}" in proc.stdout
    made = Chain.load(saved)
    ref = Chain.load(files["chain"])
    assert made.chance == 0.25 and [s.fit.law.name for s in made.stages] == ["chinchilla", "sigmoid"]
    a, b = made.predict(N=3e9, D=6e10), ref.predict(N=3e9, D=6e10)
    assert a.mean[0] == pytest.approx(b.mean[0], rel=1e-12)


def test_plain_fit_prediction_is_unchanged(files: dict[str, Path]) -> None:
    proc = run("predict", str(files["step1"]), "--at", "N=1e9", "D=2e10")
    assert proc.returncode == 0, proc.stderr
    assert "bpb" in proc.stdout and "parameter uncertainty only" in proc.stdout


def test_bad_chain_input_gives_one_line_errors(files: dict[str, Path], tmp_path: Path) -> None:
    d = json.loads(files["chain"].read_text())
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**d, "schema": "scalelab.chain/2"}))
    assert_clean_error(run("predict", str(future), "--at", "N=1e9", "D=1e10"),
                       "chain schema 'scalelab.chain/2' is not readable")
    other = tmp_path / "other_law.json"
    d2 = json.loads(files["chain"].read_text())
    d2["stages"][1]["fit"]["law"] = "logistic_curve"
    other.write_text(json.dumps(d2))
    assert_clean_error(run("predict", str(other), "--at", "N=1e9", "D=1e10"),
                       "unknown law 'logistic_curve'")
    assert_clean_error(run("predict", str(files["chain"]), "--at", "N=1e9"),
                       "needs input(s) N, D; missing D")
    assert_clean_error(run("predict", str(files["step2"]), "--then", str(files["step1"]),
                           "--at", "x=1.0"),
                       "step 2 of a two-step chain must be a law of one input; chinchilla has 2")
    assert_clean_error(run("predict", str(files["chain"]), "--then", str(files["step2"]),
                           "--at", "N=1e9", "D=1e10"), "already a chain")
    assert_clean_error(run("predict", str(files["step1"]), "--chance", "0.25",
                           "--at", "N=1e9", "D=1e10"), "only apply with --then")
    assert_clean_error(run("predict", str(tmp_path / "none.json"), "--at", "N=1e9"), "not found")
