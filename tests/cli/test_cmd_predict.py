"""`scalelab backtest` and `scalelab plan` through their command module, including bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import scalelab
from scalelab.cli.cmd_predict import main
from scalelab.laws import make_law

CHIN = [
    "chinchilla",
    "--law",
    "chinchilla",
    "--x",
    "N=params_N",
    "--x",
    "D=tokens_D",
    "--y",
    "loss",
    "--where",
    "excluded_by_epoch == 0",
]


def one_error_line(err: str, *fragments: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("...")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "fit.json"
    scalelab.fit(
        "chinchilla",
        "chinchilla",
        x={"N": "params_N", "D": "tokens_D"},
        y="loss",
        where="excluded_by_epoch == 0",
        starts=200,
        bootstrap=200,
        seed=0,
    ).save(out)
    return out


# ----------------------------------------------------------------------------- backtest
def test_backtest_prints_metrics_and_writes_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bt.json"
    rc = main(
        [
            "backtest",
            *CHIN,
            "--holdout",
            "params_N >= 2e9",
            "--noise",
            "residual",
            "--rows",
            "3",
            "--json",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "ARE 0.850%" in captured.out
    assert "predicting 52 held out (params_N >= 2e9)" in captured.out
    assert "... 49 more rows (all in --json)" in captured.out
    assert "extrapolating: N up to 9.02x the largest fitted N" in captured.out
    d = json.loads(out.read_text())
    assert set(d) == {
        "schema",
        "law",
        "x",
        "y",
        "holdout",
        "n_fit",
        "n_holdout",
        "coverage_level",
        "metrics",
        "rows",
        "fit",
    }
    assert d["schema"] == "scalelab.backtest/1" and (d["n_fit"], d["n_holdout"]) == (188, 52)
    assert d["metrics"]["are"] == pytest.approx(0.00850, abs=5e-5)


def test_backtest_takes_the_fit_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bt.json"
    rc = main(
        [
            "backtest",
            *CHIN,
            "--holdout",
            "params_N >= 2e9",
            "--noise",
            "residual",
            "--quiet",
            "--fix",
            "alpha=0.35",
            "--delta",
            "1e-4",
            "--starts",
            "200",
            "--coverage",
            "0.8",
            "--json",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0 and captured.out == "", captured.err
    d = json.loads(out.read_text())
    opts = d["fit"]["options"]
    assert opts["fixed"] == {"alpha": 0.35} and opts["delta"] == 1e-4 and opts["n_starts"] <= 201
    assert d["fit"]["params"]["alpha"]["value"] == 0.35 and d["fit"]["n_free"] == 4
    assert d["coverage_level"] == 0.8


def test_backtest_bad_holdouts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", *CHIN, "--holdout", "params_N > 1e15"]) == 2
    one_error_line(
        capsys.readouterr().err,
        '--holdout "params_N > 1e15" matches none of the 240 rows',
        "nothing to predict",
    )
    assert main(["backtest", *CHIN, "--holdout", "params_N > 6e7"]) == 2
    one_error_line(
        capsys.readouterr().err,
        "leaves 1 of the 240 rows",
        "needs at least 7",
        "hold out fewer rows",
    )
    assert main(["backtest", *CHIN, "--holdout", "parms_N > 1"]) == 2
    one_error_line(capsys.readouterr().err, "unknown column 'parms_N'")
    with pytest.raises(SystemExit) as exc:
        main(["backtest", *CHIN])
    assert exc.value.code == 2
    assert "--holdout" in capsys.readouterr().err


# ----------------------------------------------------------------------------- plan
def test_plan_prints_allocation_intervals_and_warning(
    fit_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan.json"
    rc = main(["plan", str(fit_file), "--compute", "5.88e23", "1e21", "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "compute 5.88e+23 FLOPs" in captured.out and "tokens/param" in captured.out
    assert "warning: extrapolating: N up to 4.57x the largest fitted N" in captured.out
    assert "noise fit-rmse" in captured.out
    d = json.loads(out.read_text())
    assert [p["compute"] for p in d["plans"]] == [5.88e23, 1e21]
    first = d["plans"][0]
    assert first["loss"]["low"] < first["loss"]["value"] < first["loss"]["high"]
    assert first["extrapolation"]["outside"] is True


def test_plan_with_the_fits_data_grows_the_noise(
    fit_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["plan", str(fit_file), "--compute", "5.88e23", "--data", "chinchilla"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "noise extrapolation" in captured.out
    assert "C up to 45.4x the largest fitted compute (1.3e+22)" in captured.out


def test_plan_bad_input(fit_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(fit_file), "--compute=-1e21"]) == 2
    one_error_line(capsys.readouterr().err, "--compute -1e+21", "positive number of FLOPs")
    assert main(["plan", str(fit_file), "--compute", "0"]) == 2
    one_error_line(capsys.readouterr().err, "positive number of FLOPs")
    assert main(["plan", str(fit_file), "--compute", "lots"]) == 2
    one_error_line(capsys.readouterr().err, "--compute: 'lots' is not a number")
    assert main(["plan", str(fit_file), "--compute", "1e21", "--noise", "residual"]) == 2
    one_error_line(capsys.readouterr().err, "--noise residual needs --data")
    assert main(["plan", str(fit_file), "--compute", "1e21", "--data", "chinchilla.csv"]) == 2
    one_error_line(capsys.readouterr().err, "chinchilla.csv")

    other_version = tmp_path / "v2.json"
    d = json.loads(fit_file.read_text())
    d["schema"] = "scalelab.fit/2"
    other_version.write_text(json.dumps(d))
    assert main(["plan", str(other_version), "--compute", "1e21"]) == 2
    one_error_line(capsys.readouterr().err, "not a scalelab fit (schema 'scalelab.fit/2'")

    rng = np.random.default_rng(0)
    x = np.logspace(6, 10, 30)
    y = make_law("power_law")(x=x, E=1.7, A=400.0, alpha=0.45) * np.exp(
        0.01 * rng.standard_normal(30)
    )
    power = tmp_path / "power.json"
    scalelab.fit("power_law", {"x": x, "loss": y}, y="loss").save(power)
    assert main(["plan", str(power), "--compute", "1e21"]) == 2
    one_error_line(
        capsys.readouterr().err, "plan needs a law with a compute-optimal allocation", "'power_law'"
    )

    assert main(["plan", str(tmp_path / "missing.json"), "--compute", "1e21"]) == 2
    one_error_line(capsys.readouterr().err, "not found")
