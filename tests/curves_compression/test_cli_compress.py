"""`scalelab compress` through cmd_compress.main and a subprocess, including bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scalelab.cli.cmd_compress import main
from scalelab.curves.compression import code_length

LN2 = math.log(2.0)
BATCH = 1000


def write_log(path: Path, rows: Sequence[tuple[Any, ...]]) -> Path:
    """A CSV log: run, step, tokens, loss."""
    path.write_text("run,step,tokens,loss\n" + "".join(f"{r},{s},{t},{y}\n" for r, s, t, y in rows))
    return path


def two_runs(n: int = 50, every: int = 1) -> list[tuple[str, float, float, float]]:
    rows = []
    for name, floor in (("small", 3.0), ("big", 2.5)):
        for s in range(every, n + 1, every):
            rows.append((name, float(s), float(s * BATCH), floor + 8.0 * (s * BATCH) ** -0.3))
    return rows


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["compress", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


BASE = ["--run-col", "run", "--tokens-col", "tokens", "--loss-col", "loss"]


def test_scores_and_ranking_match_the_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_log(tmp_path / "log.csv", two_runs(every=5))
    out_json = tmp_path / "code.json"
    code, out, err = run_main(capsys, str(data), *BASE, "--vocab", "50257", "--json", str(out_json))
    assert code == 0, err
    assert "ranking by code length" in out and "wrote" in out
    payload = json.loads(out_json.read_text())
    assert payload["head"] == "uniform" and payload["rule"] == "loglog"
    runs = {r["run"]: r for r in payload["runs"]}
    rows = [r for r in two_runs(every=5) if r[0] == "big"]
    t = np.array([r[2] for r in rows])
    y = np.array([r[3] for r in rows])
    expected = code_length(t, y, vocab=50257)
    assert runs["big"]["bits"] == pytest.approx(expected.bits, rel=1e-12)
    assert runs["big"]["compression_ratio"] == pytest.approx(expected.compression_ratio)
    ranking = payload["ranking"]["runs"]
    assert [r["run"] for r in ranking] == ["big", "small"]
    assert ranking[1]["bits_minus_best"] == pytest.approx(runs["small"]["bits"] - runs["big"]["bits"])
    assert ranking[1]["ratio_to_best"] == pytest.approx(runs["small"]["bits"] / runs["big"]["bits"])
    # The printed table carries the same numbers.
    assert f"{runs['big']['bits_per_token']:.5f}" in out


def test_step_column_gives_exact_per_batch_code_length(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_log(tmp_path / "log.csv", two_runs())
    out_json = tmp_path / "code.json"
    code, _, err = run_main(capsys, str(data), *BASE, "--step-col", "step", "--head", "first",
                            "--bytes-per-token", "4", "--json", str(out_json))
    assert code == 0, err
    runs = {r["run"]: r for r in json.loads(out_json.read_text())["runs"]}
    losses = [r[3] for r in two_runs() if r[0] == "small"]
    assert runs["small"]["tokens_per_step"] == BATCH
    assert runs["small"]["bits"] == pytest.approx(sum(losses) * BATCH / LN2, rel=1e-12)
    assert runs["small"]["bits_per_byte"] == pytest.approx(runs["small"]["bits_per_token"] / 4)
    assert runs["small"]["compression_ratio"] == pytest.approx(32 / runs["small"]["bits_per_token"])


def test_unsorted_rows_are_sorted_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = two_runs(every=5)
    ordered = write_log(tmp_path / "ordered.csv", rows)
    shuffled = write_log(tmp_path / "shuffled.csv", [rows[i] for i in np.random.default_rng(0).permutation(len(rows))])
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run_main(capsys, str(ordered), *BASE, "--vocab", "256", "--json", str(a))[0] == 0
    code, _, err = run_main(capsys, str(shuffled), *BASE, "--vocab", "256", "--json", str(b))
    assert code == 0
    assert "note: run 'big': rows were not in token order; sorted by tokens" in err
    bits_a = {r["run"]: r["bits"] for r in json.loads(a.read_text())["runs"]}
    bits_b = {r["run"]: r["bits"] for r in json.loads(b.read_text())["runs"]}
    assert bits_a == pytest.approx(bits_b, rel=1e-14)


def test_duplicated_tokens_error_or_average(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [("a", 1, 100.0, 3.0), ("a", 2, 200.0, 2.0), ("a", 2, 200.0, 2.4), ("a", 3, 300.0, 2.0)]
    data = write_log(tmp_path / "dup.csv", rows)
    code, _, err = run_main(capsys, str(data), *BASE, "--head", "first")
    assert_clean_error(code, err, "run 'a'", "repeated token value", "--duplicates mean")
    out_json = tmp_path / "dup.json"
    code, _, err = run_main(capsys, str(data), *BASE, "--head", "first", "--rule", "trapezoid",
                            "--duplicates", "mean", "--json", str(out_json))
    assert code == 0 and "averaged the losses of 1 repeated" in err
    bits = json.loads(out_json.read_text())["runs"][0]["bits"]
    assert bits == pytest.approx((100 * 3.0 + 100 * (3.0 + 2.2) / 2 + 100 * (2.2 + 2.0) / 2) / LN2)
    code, _, err = run_main(capsys, str(data), *BASE, "--head", "first", "--step-col", "step",
                            "--duplicates", "mean")
    assert_clean_error(code, err, "repeated token value", "drop --step-col")


def test_different_coverage_is_not_ranked_unless_truncated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [r for r in two_runs(every=5) if not (r[0] == "big" and r[1] > 40)]
    data = write_log(tmp_path / "log.csv", rows)
    code, out, _ = run_main(capsys, str(data), *BASE, "--vocab", "256")
    assert code == 0
    assert "no ranking: runs cover different tokens" in out and "ranking by" not in out
    code, out, _ = run_main(capsys, str(data), *BASE, "--vocab", "256", "--truncate")
    assert code == 0 and "ranking by code length (common tokens 0 to 40000" in out


def test_single_run_without_run_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_log(tmp_path / "log.csv", [r for r in two_runs(every=10) if r[0] == "big"])
    code, out, err = run_main(capsys, str(data), "--tokens-col", "tokens", "--loss-col", "loss",
                              "--head", "exclude", "--where", "step >= 20")
    assert code == 0, err
    assert "1 run(s) where step >= 20" in out and "ranking" not in out


@pytest.mark.parametrize(
    ("rows", "extra", "fragments"),
    [
        ([("a", 1, 100.0, 3.0), ("a", 2, 200.0, 2.0)], ["--loss-col", "los"], ["unknown column 'los'"]),
        ([("a", 1, 0.0, 3.0), ("a", 2, 200.0, 2.0)], [], ["'tokens'", "non-positive"]),
        ([("a", 1, 100.0, float("nan")), ("a", 2, 200.0, 2.0)], [], ["'loss'", "NaN"]),
        ([("a", 1, 100.0, 3.0), ("a", 2, 200.0, 2.0), ("b", 1, 100.0, 3.0)], [],
         ["run 'b'", "at least 2 logged points"]),
        ([("a", 1, 100.0, 3.0), ("a", 2, 200.0, 2.0)], ["--head", "uniform"], ["--vocab"]),
        ([("a", 1, 100.0, 3.0), ("a", 2, 200.0, 2.0)], ["--where", "step > 5"], ["matched none"]),
        ([("a", 1, 100.0, 3.0), ("a", 2, 200.0, 2.0)], ["--vocab", "0"], ["vocab must be"]),
        ([("a", 1, 100.0, 3.0), ("a", 2, 300.0, 2.0), ("a", 3, 400.0, 2.0)],
         ["--step-col", "step"], ["tokens per step varies"]),
        ([("a", 2, 100.0, 3.0), ("a", 1, 200.0, 2.0)], ["--step-col", "step"],
         ["steps do not increase"]),
        ([("a", 1, 100.0, 3.0), ("a", 2, 200.0, 2.0)], ["--json", "/no/such/folder/x.json"],
         ["does not exist"]),
    ],
)
def test_bad_input_gives_one_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows, extra, fragments
) -> None:
    data = write_log(tmp_path / "bad.csv", rows)
    args = [*BASE, "--head", "first", *extra]
    # later flags win in argparse, so --loss-col/--head given in `extra` override the base
    code, out, err = run_main(capsys, str(data), *args)
    assert_clean_error(code, err, *fragments)
    assert out == ""


def test_missing_file_and_bad_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_main(capsys, str(tmp_path / "none.csv"), *BASE)
    assert_clean_error(code, err)
    with pytest.raises(SystemExit) as exc:
        main(["compress", "x.csv", *BASE, "--head", "zero"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")


def _subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    code = f"from scalelab.cli.cmd_compress import main; raise SystemExit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_subprocess_success_and_errors(tmp_path: Path) -> None:
    data = write_log(tmp_path / "log.csv", two_runs(every=5))
    proc = _subprocess("compress", str(data), *BASE, "--vocab", "50257")
    assert proc.returncode == 0, proc.stderr
    assert "big" in proc.stdout and "ranking by code length" in proc.stdout
    bad = write_log(tmp_path / "bad.csv", [("a", 1, 100.0, float("nan")), ("a", 2, 200.0, 2.0)])
    proc = _subprocess("compress", str(bad), *BASE, "--vocab", "50257")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: column 'loss'") and "Traceback" not in proc.stderr
    proc = _subprocess("compress", str(data), *BASE, "--vocab", "50257", "--head", "sideways")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")


def test_importing_the_command_does_not_import_numpy() -> None:
    code = (
        "import sys, argparse; from scalelab.cli import cmd_compress\n"
        "p = argparse.ArgumentParser(); cmd_compress.register(p.add_subparsers())\n"
        "print([m for m in ('numpy', 'scipy', 'torch', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gpt3_training_curves_rank_by_model_size(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The measured example of docs/compression.md (GPT-3 train loss digitised from Brown et al.
    # 2020 Fig. 4.1, via the Hitchhiker's guide collection).
    code, out, err = run_main(
        capsys, str(shared_data / "hitchhiker_colpret_subset_long.csv"),
        "--run-col", "model_name", "--tokens-col", "tokens_seen", "--loss-col", "value",
        "--where", "family == 'gpt3' and metric == 'train_loss'", "--vocab", "50257",
        "--head", "exclude", "--duplicates", "mean", "--truncate",
    )
    assert code == 0, err
    ranked = [line.split()[1:3] for line in out.split("shortest code first)")[1].splitlines()[3:]]
    order = [" ".join(r) for r in ranked if r]
    assert order == ["GPT-3 175B", "GPT-3 13B", "GPT-3 6.7B", "GPT-3 2.7B", "GPT-3 XL",
                     "GPT-3 Large", "GPT-3 Medium", "GPT-3 Small"]
    assert "2.71302" in out and "4.03543" in out  # bits/token of 175B and Small (docs)
