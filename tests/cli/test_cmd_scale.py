"""`scalelab skills`, `scalelab mixture` and `scalelab persist` through cmd_scale.main."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scalelab.cli.cmd_scale import main
from scalelab.predict.mixture import recommend_mixture
from scalelab.predict.persistence import persistence_from_table
from tests.predict.test_mixture import DOMAINS, runs
from tests.predict.test_skills import synthetic_table


def write_csv(path: Path, columns: dict[str, list]) -> Path:
    names = list(columns)
    n = len(columns[names[0]])
    lines = [",".join(names)]
    for i in range(n):
        lines.append(
            ",".join(
                repr(v) if isinstance(v, float) else str(v) for v in (columns[k][i] for k in names)
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


SKILL_ARGS = [
    "--size-col",
    "n_params",
    "--skill-col",
    "task",
    "--tokens-col",
    "tokens",
    "--stderr-col",
    "se",
    "--fraction",
    "0.5",
    "--chance",
    "0.25",
]


def test_skills_prints_predictions_and_writes_the_library_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_csv(tmp_path / "evals.csv", synthetic_table())
    out_json = tmp_path / "skills.json"
    code, out, err = run_main(
        capsys,
        "skills",
        str(data),
        *SKILL_ARGS,
        "--target-n",
        "1e10,3e10",
        "--budget",
        "3e7",
        "--json",
        str(out_json),
    )
    assert code == 0, err
    assert "N=1e+10" in out and "N=3e+10" in out and "within budget" in out
    assert "flat" in out and "insufficient" in out and "wrote" in out
    d = json.loads(out_json.read_text())
    assert d["schema"] == "scalelab.skills/1" and d["crossings"]["unit"] == "tokens"
    grows = next(s for s in d["skills"] if s["skill"] == "grows")
    assert grows["exponent"] == pytest.approx(0.3, abs=0.05)
    assert [p["n"] for p in grows["predictions"]] == [1e10, 3e10]
    # backtest mode
    code, out, err = run_main(capsys, "skills", str(data), *SKILL_ARGS, "--holdout-above", "2e8")
    assert code == 0, err
    assert "backtest: sizes above 2e+08 held out" in out and "m1e+09" in out


def test_mixture_matches_the_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    columns = runs(0)
    data = write_csv(tmp_path / "mix.csv", columns)
    out_json = tmp_path / "mix.json"
    code, out, err = run_main(
        capsys,
        "mixture",
        str(data),
        "--domains",
        ",".join(DOMAINS),
        "--target",
        "loss_code",
        "--target",
        "loss_text",
        "--run-col",
        "run",
        "--bootstrap",
        "50",
        "--json",
        str(out_json),
    )
    assert code == 0, err
    lib = recommend_mixture(
        data, domains=DOMAINS, targets=["loss_code", "loss_text"], run_col="run", bootstrap=50
    )
    d = json.loads(out_json.read_text())
    assert d["schema"] == "scalelab.mixture/1"
    assert d["weights"] == pytest.approx(lib.weights, abs=1e-9)
    assert d["gain"] == pytest.approx(lib.gain, rel=1e-9)
    assert "w_code" in out and "gain" in out and f"{lib.weights['w_code']:.3f}" in out
    code, out, err = run_main(
        capsys,
        "mixture",
        str(data),
        "--domains",
        ",".join(DOMAINS),
        "--target",
        "loss_code=3",
        "--target",
        "loss_text",
        "--reference",
        "0.4,0.4,0.2",
        "--bootstrap",
        "20",
    )
    assert code == 0, err
    assert "loss_code (weight 0.75)" in out and "reference given" in out


def test_persist_gives_a_verdict_per_target_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = np.repeat(np.geomspace(1e7, 1e9, 5), 2)
    rng = np.random.default_rng(0)
    log_s = np.log(1.8) - 0.12 * np.log(sizes / 1e8) + 0.03 * rng.standard_normal(sizes.size)
    data = write_csv(
        tmp_path / "speedups.csv",
        {
            "n_params": sizes.tolist(),
            "speedup": np.exp(log_s).tolist(),
            "low": np.exp(log_s - 0.06).tolist(),
            "high": np.exp(log_s + 0.06).tolist(),
        },
    )
    out_json = tmp_path / "persist.json"
    code, out, err = run_main(
        capsys,
        "persist",
        str(data),
        "--size-col",
        "n_params",
        "--effect-col",
        "speedup",
        "--lower-col",
        "low",
        "--upper-col",
        "high",
        "--target-n",
        "3e9",
        "--target-n",
        "1e12",
        "--json",
        str(out_json),
    )
    assert code == 0, err
    assert "-> persists" in out and "-> vanishes" in out and "reaches the threshold" in out
    d = json.loads(out_json.read_text())
    assert [r["verdict"] for r in d["results"]] == ["persists", "vanishes"]
    lib = persistence_from_table(
        data,
        size_col="n_params",
        effect_col="speedup",
        lower_col="low",
        upper_col="high",
        target_n=1e12,
    )
    assert d["results"][1]["predicted"] == pytest.approx(lib.predicted, rel=1e-12)


def test_bad_input_is_one_error_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    columns = runs(0, n=8)
    off = write_csv(
        tmp_path / "off.csv", {**columns, "w_math": [v + 0.2 for v in columns["w_math"]]}
    )
    code, _, err = run_main(
        capsys, "mixture", str(off), "--domains", ",".join(DOMAINS), "--target", "loss_code"
    )
    assert_clean_error(code, err, "sum to 1.2, not 1", "--normalize")
    code, _, err = run_main(
        capsys,
        "mixture",
        str(off),
        "--domains",
        ",".join(DOMAINS),
        "--target",
        "loss_code",
        "--reference",
        "even",
    )
    assert_clean_error(code, err, "--reference 'even'")
    two = write_csv(tmp_path / "two.csv", {"n": [1e7, 1e8, 1e8], "speedup": [1.5, 1.4, 1.3]})
    code, _, err = run_main(
        capsys,
        "persist",
        str(two),
        "--size-col",
        "n",
        "--effect-col",
        "speedup",
        "--target-n",
        "1e10",
    )
    assert_clean_error(code, err, "2 distinct model size(s)", "at least 3")
    code, _, err = run_main(
        capsys,
        "persist",
        str(two),
        "--size-col",
        "n",
        "--effect-col",
        "gain",
        "--target-n",
        "1e10",
    )
    assert_clean_error(code, err, "unknown column 'gain'")
    code, _, err = run_main(
        capsys,
        "persist",
        str(two),
        "--size-col",
        "n",
        "--effect-col",
        "speedup",
        "--target-n",
        "big",
    )
    assert_clean_error(code, err, "--target-n: 'big' is not a number")
    evals = write_csv(tmp_path / "evals.csv", synthetic_table())
    code, _, err = run_main(capsys, "skills", str(evals), *SKILL_ARGS)
    assert_clean_error(code, err, "--target-n", "--holdout-above")
    code, _, err = run_main(
        capsys, "skills", str(evals), *SKILL_ARGS, "--target-n", "1e10", "--skill", "nope"
    )
    assert_clean_error(code, err, "skill 'nope' has no rows", "skills: grows, flat")
    code, _, err = run_main(
        capsys,
        "skills",
        str(evals),
        *SKILL_ARGS,
        "--target-n",
        "1e10",
        "--where",
        "n_params < 6e7",
    )
    assert_clean_error(code, err, "2 distinct model size(s)", "at least 3")
    code, _, err = run_main(
        capsys,
        "skills",
        str(evals),
        *SKILL_ARGS,
        "--target-n",
        "1e10",
        "--json",
        str(tmp_path / "missing" / "out.json"),
    )
    assert_clean_error(code, err, "folder", "does not exist")


def test_predict_reads_a_skills_result_and_matches_its_predictions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scalelab.cli.main import main as scalelab_main

    data = write_csv(tmp_path / "evals.csv", synthetic_table())
    saved = tmp_path / "skills.json"
    code, _, err = run_main(capsys, "skills", str(data), *SKILL_ARGS, "--target-n", "1e10,3e10",
                            "--budget", "3e7", "--json", str(saved))
    assert code == 0, err
    out_json = tmp_path / "pred.json"
    code = scalelab_main(["predict", str(saved), "--at", "N=1e10,3e10", "--budget", "3e7",
                          "--json", str(out_json)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "grows" in out and "not predicted" in out  # a skill without a trend says why
    got = {(r["skill"], r["n"]): r for r in json.loads(out_json.read_text())["predictions"] if "value" in r}
    for skill in json.loads(saved.read_text())["skills"]:
        for p in skill["predictions"]:
            r = got[(skill["skill"], p["n"])]
            assert r["value"] == pytest.approx(p["value"], rel=1e-9)
            assert (r["low"], r["high"]) == pytest.approx((p["low"], p["high"]), rel=1e-9)
            assert r["verdict"] == p["verdict"]
    code = scalelab_main(["predict", str(saved), "--at", "N=1e10", "D=1e9"])
    assert_clean_error(code, capsys.readouterr().err, "model sizes only")
