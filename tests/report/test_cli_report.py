"""``scalelab report`` through its command module: output, progress, and one-line errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from scalelab.cli.cmd_report import main
from scalelab.fit import fit
from scalelab.report.progress import Steps, bar, stream_progress


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_fit_file_as_source(capsys: pytest.CaptureFixture[str], tmp_path: Path, chinchilla_fit: Path) -> None:
    code, out, err = run(capsys, str(chinchilla_fit), "-o", str(tmp_path / "r"),
                         "--target", "N=70e9,D=1.4e12")
    assert code == 0, err
    assert f"wrote {tmp_path / 'r' / 'index.html'}: 3 figures" in out
    # Chinchilla (70B, 1.4T tokens) from the 240-point refit: loss 1.9734, as `scalelab predict`
    line = next(x for x in out.splitlines() if x.startswith("fit1: predicted"))
    assert float(line.split()[2]) == pytest.approx(1.9734, abs=0.0005)
    assert "[########################] 3/3 figures: fit1 isoFLOP view" in err
    manifest = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [f["stem"] for f in manifest["figures"]] == ["fit1_law_vs_data", "fit1_extrapolation",
                                                        "fit1_isoflop"]


def test_store_with_progress_and_quiet(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       store_root: Path) -> None:
    code, out, err = run(capsys, str(store_root), "-o", str(tmp_path / "r"), "--bootstrap", "0")
    assert code == 0, err
    assert "transitions: 3 of 6 curves have one" in out
    assert "6/6 transition fits" in err and "3/3 figures: emergence map" in err
    code, out, err = run(capsys, str(store_root), "-o", str(tmp_path / "q"), "--bootstrap", "0",
                         "--quiet")
    assert code == 0 and err == ""


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ((), ("nothing to report",)),
        (("missing_dir",), ("'missing_dir' not found",)),
        (("--fit", "missing.json"), ("fit file 'missing.json' not found",)),
        (("--backtest", "missing.json"), ("backtest file 'missing.json' not found",)),
        (("--target", "N=oops"), ("is not a number",)),
        (("--curves", "chinchilla", "--metric", "loss", "--run-col", "nope"), ("nope",)),
        (("--chance", "x=y"), ("expected VALUE or SKILL=VALUE",)),
    ],
)
def test_bad_input_is_one_error_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     args: tuple[str, ...], fragments: tuple[str, ...],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *args, "-o", str(tmp_path / "r"))
    assert code == 2
    one_error(err, *fragments)


def test_compute_target_for_a_one_input_law_is_refused(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    x = np.geomspace(1e3, 1e6, 12)
    res = fit("power_law", {"tokens": x, "loss": 1.5 + 30 * x**-0.3}, x={"x": "tokens"}, y="loss")
    res.save(tmp_path / "pl.json")
    code, _, err = run(capsys, str(tmp_path / "pl.json"), "-o", str(tmp_path / "r"),
                       "--target-compute", "1e22")
    assert code == 2
    one_error(err, "--target-compute needs a law of N and D", "use --target x=VALUE")


def test_progress_lines() -> None:
    assert bar(0, 4, "fits") == "[........................] 0/4 fits"
    assert bar(3, 4, "fits: a") == "[##################......] 3/4 fits: a"
    seen: list[str] = []
    steps = Steps("figures", 2, seen.append)
    steps.start()
    steps.advance("one")
    steps.advance()
    assert seen == [bar(0, 2, "figures"), bar(1, 2, "figures: one"), bar(2, 2, "figures")]
    buffer = io.StringIO()
    say = stream_progress(buffer)
    say("a")
    say("b")
    assert buffer.getvalue() == "a\nb\n"  # not a terminal: one line per update
