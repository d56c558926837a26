"""``scalelab demo --quick`` end to end, through the real CLI entry point, then rerun.

One module-scoped run trains the quick grid (3 sizes x 1 mixture, 600 steps) for real, so the
checks below are on real runs: the skill must actually emerge, the fit must predict, the
report's figures must exist and render. About 40 s of CPU for training plus the analysis
twice (the rerun); marked slow.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scalelab.cli.cmd_demo import main
from scalelab.demo import QUICK_GRID, run_demo
from scalelab.fit import FitResult
from scalelab.harness.grid import load_grid
from scalelab.report import find_chromium, load_backtest
from scalelab.store import read_table

pytestmark = pytest.mark.slow

LARGE_N = 1_189_888  # non-embedding parameters of the "large" rung (docs/harness.md)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo") / "out"
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", "--quick", "-o", str(out), "--workers", "2"])
    return {"out": out, "code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def test_the_command_succeeds_and_prints_the_summary(demo: dict[str, Any]) -> None:
    assert demo["code"] == 0, demo["stderr"][-2000:]
    out = demo["stdout"]
    assert out.startswith("scalelab demo --quick: 3 runs (3 trained now, 0 already done)")
    for fragment in ("skill 'addition'", "prediction for large (N = 1.19M", "backtest (fit without",
                     "report: "):
        assert fragment in out, fragment
    assert "demo: [6/6] building the report" in demo["stderr"]  # progress goes to stderr
    assert "demo: [" not in out


def test_grid_file_is_the_grid_that_ran(demo: dict[str, Any]) -> None:
    out = demo["out"]
    assert (out / "grid.toml").read_text() == QUICK_GRID
    ids = sorted(r.run_id for r in load_grid(out / "grid.toml").runs())
    assert sorted(p.name for p in (out / "store").iterdir() if p.is_dir()) == ids


def test_the_skill_emerges_in_the_quick_grid(demo: dict[str, Any]) -> None:
    table = read_table(demo["out"] / "runs.csv").where(
        "split == 'eval' and source == 'addition' and metric == 'acc'"
    )
    runs = table.column("run")
    steps, acc = table.numeric("step"), table.numeric("value")
    early, final = {}, {}
    for run in set(runs.tolist()):
        sel = runs == run
        curve = acc[sel][np.argsort(steps[sel])]
        early[run], final[run] = float(np.max(curve[: curve.size // 2])), float(curve[-1])
    assert len(final) == 3
    # every run spends its first half at chance (exact match of a 2-3 digit sum: ~0.01 of
    # 256 held-out pairs) ...
    assert max(early.values()) <= 0.02, early
    # ... and the largest one ends far above it (0.34 at step 600 on this machine)
    best = max(final, key=final.get)
    assert "size-small" in best and final[best] >= 0.2, final


def test_fit_predicts_the_larger_model_with_an_interval(demo: dict[str, Any]) -> None:
    out = demo["out"]
    res = FitResult.load(out / "fit.json")
    assert res.law.name == "chinchilla" and res.converged
    dev = read_table(out / "dev_loss.csv")
    d_max = float(dev.numeric("D").max())
    pred = res.predict(N=LARGE_N, D=d_max)
    mean, lower, upper = float(pred.mean[0]), float(pred.lower[0]), float(pred.upper[0])
    assert np.isfinite([mean, lower, upper]).all()
    assert lower < mean < upper
    # the loss of a larger model at the largest budget is in the range of the measured losses
    assert 0.5 * dev.numeric("loss").min() < mean < dev.numeric("loss").max()
    summary = json.loads((out / "demo.json").read_text())
    assert summary["schema"] == "scalelab.demo/1"
    fc = summary["forecast"]
    assert fc["N"] == LARGE_N and fc["D"] == d_max
    assert fc["mean"] == pytest.approx(mean, rel=1e-9)
    assert fc["lower"] < fc["mean"] < fc["upper"]
    assert fc["warning"].startswith("extrapolating: N up to 5.95x the largest fitted N")


def test_backtest_file_has_the_schema_and_holds_out_the_largest_size(demo: dict[str, Any]) -> None:
    bt = load_backtest(demo["out"] / "backtest.json")  # checks the schema field by field
    raw = json.loads((demo["out"] / "backtest.json").read_text())
    assert raw["schema"] == "scalelab.backtest/1"
    assert bt.n_holdout == len(bt.rows) > 0 and bt.n_fit > 0
    assert {r.inputs["N"] for r in bt.rows} == {200_064.0}  # the "small" rung
    assert 0 <= bt.metrics["coverage"] <= 1 and bt.metrics["are"] > 0


def test_report_links_figures_that_exist_and_are_valid(demo: dict[str, Any]) -> None:
    page = demo["out"] / "report" / "index.html"
    html = page.read_text()
    assert '<section id="demo"><h2>Demo summary</h2>' in html
    links = set(re.findall(r'(?:src|href)="(figures/[^"]+)"', html))
    pngs = sorted(link for link in links if link.endswith(".png"))
    svgs = sorted(link for link in links if link.endswith(".svg"))
    assert len(pngs) >= 6 and len(svgs) == len(pngs)
    for link in pngs:
        width, height = _png_size((page.parent / link).read_bytes())
        assert width > 200 and height > 100, link
    for link in svgs:
        text = (page.parent / link).read_text()
        assert "<svg" in text and text.rstrip().endswith("</svg>"), link


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium on PATH")
def test_screenshot_is_written_and_not_blank(demo: dict[str, Any]) -> None:
    from matplotlib import image

    shot = demo["out"] / "report" / "screenshot.png"
    assert f"screenshot: {shot}" in demo["stdout"]
    pixels = image.imread(shot)
    assert pixels.shape[0] > 1000 and pixels.shape[1] > 1000
    assert float(np.std(pixels[..., :3])) > 0.05  # text and figures, not a blank page


def test_rerun_skips_finished_runs_and_rebuilds_the_analysis(demo: dict[str, Any]) -> None:
    out = demo["out"]

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    metrics = {p: digest(p) for p in (out / "store").glob("*/metrics.jsonl")}
    fit_before = json.loads((out / "fit.json").read_text())["params"]
    lines: list[str] = []
    result = run_demo(out, quick=True, workers=1, progress=lines.append)
    assert (result.trained, result.skipped) == (0, 3)
    assert any("3 already finished" in line for line in lines)
    assert {p: digest(p) for p in metrics} == metrics  # no run was touched
    assert json.loads((out / "fit.json").read_text())["params"] == fit_before  # seeded: same fit
    assert result.summary().startswith("scalelab demo --quick: 3 runs (0 trained now, 3 already done)")
