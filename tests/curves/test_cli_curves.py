"""`scalelab curves` and `scalelab speedup` through scalelab.cli.cmd_curves.main."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scalelab.cli.cmd_curves import main as _main

PYTHIA_WHERE = "num_fewshot == 0 and deduped == 0 and task == 'lambada_openai' and model in ['pythia-70m', 'pythia-12b']"


def main(argv: list[str]) -> int:
    """The command's exit code, including argparse's usage errors (SystemExit 2)."""
    try:
        return _main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def grokking_table(tmp_path: Path) -> Path:
    steps = [0, 10, 100, 300, 1000, 3000, 10000, 30000]
    rows = []
    for run, x0 in (("small", 3000.0), ("big", 300.0), ("stuck", 1e7)):
        for task in ("mod97", "copy"):
            for s in steps:
                acc = 0.01 + 0.98 / (1 + np.exp(-(np.log(s + 1) - np.log(x0)) / 0.4))
                rows.append(
                    {
                        "model": run,
                        "task": task,
                        "step": s,
                        "tokens": s * 4096,
                        "metric": "acc",
                        "value": round(float(acc), 6),
                        "stderr": 0.01,
                    }
                )
    return write_csv(tmp_path / "evals.csv", rows)


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("...")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def test_module_import_stays_light() -> None:
    code = (
        "import sys; import scalelab.cli.cmd_curves\n"
        "print([m for m in ('numpy', 'scipy', 'torch', 'lmfit', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_curves_prints_steps_not_reached_and_writes_json(tmp_path: Path, capsys) -> None:
    data, out = grokking_table(tmp_path), tmp_path / "curves.json"
    code = main(
        [
            "curves",
            str(data),
            "--run-col",
            "model",
            "--skill-col",
            "task",
            "--metric",
            "acc",
            "--tokens-col",
            "tokens",
            "--stderr-col",
            "stderr",
            "--threshold",
            "0.9",
            "--bootstrap",
            "50",
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "not reached" in text and "by 30000" in text and "emerges at step" in text
    payload = json.loads(out.read_text())
    assert payload["schema"] == "scalelab.curves/1" and payload["metric"] == "acc"
    got = {(c["run"], c["skill"]): c for c in payload["curves"]}
    assert len(got) == 6
    stuck = got["stuck", "mod97"]
    assert stuck["emergence"]["status"] == "not_reached" and stuck["emergence"]["step"] is None
    assert stuck["transition"]["status"] in ("no_transition", "outside_range")
    assert stuck["transition"]["step"] is None
    small, big = got["small", "mod97"]["emergence"], got["big", "mod97"]["emergence"]
    assert big["step"] < small["step"] and small["tokens"] == pytest.approx(small["step"] * 4096)
    assert got["small", "mod97"]["transition"]["status"] in ("ok", "weak")


def test_curves_fraction_mode_needs_chance(tmp_path: Path, capsys) -> None:
    data = grokking_table(tmp_path)
    base = [
        "curves",
        str(data),
        "--run-col",
        "model",
        "--skill-col",
        "task",
        "--metric",
        "acc",
        "--fraction",
        "0.5",
        "--no-fit",
    ]
    assert main(base) == 2
    assert "no chance level for skill" in one_error_line(capsys.readouterr().err)
    assert main([*base, "--chance", "0.01", "--chance", "copy=0.02", "--quiet"]) == 0
    assert main([*base, "--chance", "copy=x"]) == 2
    assert "--chance: 'x' is not a number" in one_error_line(capsys.readouterr().err)


def test_curves_on_pythia(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.json"
    code = main(
        [
            "curves",
            str(shared_data / "pythia_v1_evals_by_checkpoint.csv"),
            "--run-col",
            "model",
            "--skill-col",
            "task",
            "--step-col",
            "step",
            "--metric",
            "acc",
            "--tokens-col",
            "tokens",
            "--stderr-col",
            "stderr",
            "--where",
            PYTHIA_WHERE,
            "--fraction",
            "0.5",
            "--chance",
            "lambada_openai=0",
            "--order-by",
            "params_total",
            "--bootstrap",
            "50",
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and text.index("pythia-70m") < text.index("pythia-12b")
    curves = {c["run"]: c for c in json.loads(out.read_text())["curves"]}
    assert curves["pythia-70m"]["emergence"]["step"] == pytest.approx(1918, abs=1)
    assert curves["pythia-12b"]["emergence"]["step"] == pytest.approx(3902, abs=1)
    assert curves["pythia-12b"]["transition"]["status"] == "ok"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--metric", "accuracy"], "available metrics: acc"),
        (["--metric", "acc", "--run-col", "nope"], "unknown column 'nope'"),
        (
            ["--metric", "acc", "--threshold", "0.9", "--fraction", "0.5"],
            "not allowed with argument",
        ),
        (["--metric", "acc", "--json", "/no/such/folder/x.json"], "does not exist"),
    ],
)
def test_curves_bad_input_is_one_error_line(tmp_path: Path, capsys, args, fragment) -> None:
    data = grokking_table(tmp_path)
    code = main(
        ["curves", str(data), "--run-col", "model", "--skill-col", "task", "--no-fit", *args]
    )
    assert code == 2
    assert fragment in one_error_line(capsys.readouterr().err)


def test_curves_duplicates_and_non_numeric_values(tmp_path: Path, capsys) -> None:
    rows = [
        {"run": "r", "step": s, "acc": a} for s, a in ((0, 0.1), (10, 0.5), (10, 0.6), (100, 0.9))
    ]
    assert (
        main(["curves", str(write_csv(tmp_path / "d.csv", rows)), "--metric", "acc", "--no-fit"])
        == 2
    )
    assert "two rows at step 10 with different values" in one_error_line(capsys.readouterr().err)
    rows[2]["acc"] = "oops"
    assert (
        main(["curves", str(write_csv(tmp_path / "n.csv", rows)), "--metric", "acc", "--no-fit"])
        == 2
    )
    assert "non-numeric" in one_error_line(capsys.readouterr().err)


def test_curves_one_point_curve_is_insufficient(tmp_path: Path, capsys) -> None:
    rows = [{"run": "a", "step": 5, "acc": 0.95}] + [
        {"run": "b", "step": s, "acc": a} for s, a in ((0, 0.1), (10, 0.95), (100, 0.95))
    ]
    code = main(
        ["curves", str(write_csv(tmp_path / "o.csv", rows)), "--metric", "acc", "--sustain", "1"]
    )
    text = capsys.readouterr().out
    assert code == 0
    line_a = next(ln for ln in text.splitlines() if ln.startswith("a "))
    assert "insufficient" in line_a


def speed_table(tmp_path: Path) -> Path:
    tokens = np.geomspace(1e6, 1e10, 13)
    rows = []
    rng = np.random.default_rng(0)
    for run, scale in (("base", 1.0), ("doremi", 2.6)):
        for seed in range(3):
            s = scale * np.exp(0.05 * rng.standard_normal())
            for i, t in enumerate(tokens):
                rows.append(
                    {
                        "run": run,
                        "seed": seed,
                        "step": i,
                        "tokens": t,
                        "metric": "loss",
                        "value": 1.5 + 40 * (t * s) ** -0.2,
                    }
                )
    return write_csv(tmp_path / "runs.csv", rows)


def test_speedup_with_seeds(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.json"
    code = main(
        [
            "speedup",
            str(speed_table(tmp_path)),
            "--baseline",
            "base",
            "--run",
            "doremi",
            "--target-loss",
            "2.5",
            "--tokens-col",
            "tokens",
            "--seed-col",
            "seed",
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "speedup" in text and "pooled t" in text
    res = json.loads(out.read_text())
    assert res["schema"] == "scalelab.speedup/1" and res["status"] == "ok"
    assert res["low"] < 2.6 < res["high"] and len(res["run_reach"]) == 3


def test_speedup_errors(tmp_path: Path, capsys) -> None:
    data = str(speed_table(tmp_path))
    assert (
        main(
            [
                "speedup",
                data,
                "--baseline",
                "base",
                "--run",
                "nope",
                "--target-loss",
                "2.5",
                "--seed-col",
                "seed",
            ]
        )
        == 2
    )
    assert "run 'nope' has no curve" in one_error_line(capsys.readouterr().err)
    assert (
        main(
            [
                "speedup",
                data,
                "--baseline",
                "base",
                "--run",
                "doremi",
                "--target-loss",
                "2.5",
                "--tokens-col",
                "tokens",
            ]
        )
        == 2
    )  # seeds mixed into one curve per run
    assert "they differ in seed" in one_error_line(capsys.readouterr().err)
    assert (
        main(
            [
                "speedup",
                data,
                "--baseline",
                "base",
                "--run",
                "doremi",
                "--threshold",
                "0.5",
                "--skill",
                "x",
            ]
        )
        == 2
    )
    assert "--skill needs --skill-col" in one_error_line(capsys.readouterr().err)
    assert main(["speedup", data, "--baseline", "base", "--run", "doremi"]) == 2
    assert "one of the arguments --target-loss --threshold is required" in capsys.readouterr().err


def test_speedup_on_skill_threshold(tmp_path: Path, capsys) -> None:
    code = main(
        [
            "speedup",
            str(grokking_table(tmp_path)),
            "--baseline",
            "small",
            "--run",
            "big",
            "--skill-col",
            "task",
            "--skill",
            "mod97",
            "--threshold",
            "0.5",
            "--run-col",
            "model",
            "--tokens-col",
            "tokens",
            "--sustain",
            "1",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "on mod97" in text and "speedup" in text
    code = main(
        [
            "speedup",
            str(grokking_table(tmp_path)),
            "--baseline",
            "stuck",
            "--run",
            "big",
            "--skill-col",
            "task",
            "--skill",
            "mod97",
            "--threshold",
            "0.5",
            "--run-col",
            "model",
            "--tokens-col",
            "tokens",
        ]
    )
    assert code == 0 and "speedup  >=" in capsys.readouterr().out
