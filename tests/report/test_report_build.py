"""The built report, read back: files, figures, tables, transitions, provenance, escaping."""

from __future__ import annotations

import json
import math
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from scalelab._version import __version__
from scalelab.errors import DataError
from scalelab.fit import FitResult
from scalelab.report import build_report
from tests.report._html import read_page


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; fails unless it is a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_every_figure_is_written_as_png_and_svg_and_linked(built_report: Any) -> None:
    report = built_report
    page = read_page(report.html.read_text())
    stems = {f.stem for f in report.figures}
    assert stems == {"learning_curves", "loss_curves", "emergence_map", "fit1_law_vs_data",
                     "fit1_extrapolation", "fit1_isoflop", "backtest1"}
    for fig in report.figures:
        width, height = png_size(fig.png)
        assert 400 < width < 3000 and 200 < height < 3000, (fig.stem, width, height)
        root = ET.parse(fig.svg).getroot()
        assert root.tag.endswith("svg")
        png = fig.png.relative_to(report.folder).as_posix()
        svg = fig.svg.relative_to(report.folder).as_posix()
        assert png in page.images and svg in page.links
    on_disk = {p.relative_to(report.folder).as_posix() for p in (report.folder / "figures").iterdir()}
    linked = set(page.images) | {h for h in page.links if h.startswith("figures/")}
    assert on_disk == linked  # nothing unlinked, nothing missing
    assert not any(src.startswith(("/", "http", "file:")) for src in page.images)


def test_transition_table_matches_the_detected_transitions(built_report: Any) -> None:
    report = built_report
    rows = read_page(report.html.read_text()).table("transitions")
    header, body = rows[0], rows[1:]
    assert header[:5] == ["run", "size", "skill", "status", "transition step"]
    assert len(body) == len(report.transitions) == 6
    for row, t in zip(body, report.transitions, strict=True):
        assert row[0] == t.run and row[2] == t.skill and row[3] == t.status
        assert row[4] == (f"{t.step:.4g}" if t.step is not None else "-")
    found = {(t.run, t.skill): t for t in report.transitions}
    # the synthetic "copy" skill rises at step 300 (small) and 100 (large): both recovered
    assert found["small-s0", "copy"].status == "ok"
    assert found["small-s0", "copy"].step == pytest.approx(300, rel=0.05)
    for run in ("large-s0", "large-s1"):
        assert found[run, "copy"].step == pytest.approx(100, rel=0.05)
    for run in ("small-s0", "large-s0", "large-s1"):
        assert found[run, "parity<&>"].status == "no_transition"


def test_backtest_table_shows_the_file_numbers(built_report: Any, backtest_doc: dict[str, Any]) -> None:
    page = read_page(built_report.html.read_text())
    metrics = {row[0]: row[1] for row in page.table("backtest-metrics")[1:]}
    m = backtest_doc["metrics"]
    assert metrics["mean absolute relative error (are)"] == f"{m['are']:.6g}"
    assert metrics["mean absolute error (mae)"] == f"{m['mae']:.6g}"
    assert metrics["max absolute error"] == f"{m['max_abs_error']:.6g}"
    assert metrics["interval coverage (nominal 95%)"] == f"{m['coverage']:.6g}"
    rows = page.table("backtest-rows")
    assert rows[0] == ["N", "D", "measured loss", "predicted", "95% low", "95% high", "error %",
                       "inside"]
    assert len(rows) - 1 == len(backtest_doc["rows"]) == backtest_doc["n_holdout"] > 5
    for cells, r in zip(rows[1:], backtest_doc["rows"], strict=True):
        expected = [r["inputs"]["N"], r["inputs"]["D"], r["y"], r["yhat"], r["lower"], r["upper"]]
        assert cells[:6] == [f"{v:.6g}" for v in expected]
        assert float(cells[6]) == pytest.approx(100 * (r["yhat"] / r["y"] - 1), rel=1e-2, abs=1e-3)
        assert cells[7] == ("yes" if r["inside"] else "no")


def test_extrapolation_and_frontier_numbers(built_report: Any, chinchilla_fit: Path) -> None:
    res = FitResult.load(chinchilla_fit)
    pred = built_report.predictions["fit1"]
    # compute-optimal allocation at Chinchilla's own budget from the 240-point refit:
    # N* 7.32e10, D* 1.31e12, loss 1.974 (docs/report.md); the band comes from predict()
    assert pred.compute == pytest.approx(5.76e23)
    assert pred.inputs["N"] == pytest.approx(7.32e10, rel=0.01)
    assert pred.inputs["D"] == pytest.approx(1.31e12, rel=0.01)
    assert 6 * pred.inputs["N"] * pred.inputs["D"] == pytest.approx(5.76e23, rel=1e-9)
    assert pred.mean == pytest.approx(1.974, abs=0.002)
    again = res.predict(N=pred.inputs["N"], D=pred.inputs["D"], coverage=0.95)
    assert (pred.lower, pred.upper) == (pytest.approx(again.lower[0]), pytest.approx(again.upper[0]))
    assert pred.lower < pred.mean < pred.upper
    assert pred.reach == pytest.approx(5.76e23 / 1.3e22, rel=0.05)  # largest run ~1.3e22 FLOPs
    plans = built_report.frontiers["fit1"]
    assert [round(math.log10(p.compute), 2) for p in plans] == [18.54, 19.34, 20.13, 20.92, 21.72, 23.76]
    assert plans[-1].plan["N"].value == pytest.approx(pred.inputs["N"], rel=1e-9)
    page = read_page(built_report.html.read_text())
    prediction = page.table("prediction")
    assert prediction[1][3] == f"{pred.mean:.5g}"


def test_header_has_provenance_and_no_environment(
    tmp_path: Path, store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCALELAB_TEST_SECRET", "hunter2-do-not-print")
    report = build_report(tmp_path / "r", store=store_root, bootstrap=0,
                          command="scalelab report runs -o r")
    text = report.html.read_text()
    assert f"scalelab {__version__}" in text
    assert "hunter2-do-not-print" not in text
    assert "scalelab report runs -o r" in text
    assert str(store_root) in text
    # the skill name is escaped, never raw markup
    assert "parity&lt;&amp;&gt;" in text and "parity<&>" not in text
    manifest = json.loads((report.folder / "report.json").read_text())
    assert manifest["schema"] == "scalelab.report/1"
    assert "hunter2-do-not-print" not in json.dumps(manifest)


def test_rebuild_removes_the_previous_figures(tmp_path: Path, store_root: Path, backtest_file: Path) -> None:
    out = tmp_path / "r"
    first = build_report(out, backtests=[backtest_file])
    assert [f.stem for f in first.figures] == ["backtest1"]
    (out / "figures" / "mine.txt").write_text("keep me")
    second = build_report(out, store=store_root, bootstrap=0)
    left = sorted(p.name for p in (out / "figures").iterdir())
    assert "backtest1.png" not in left and "backtest1.svg" not in left and "mine.txt" in left
    assert {f.png.name for f in second.figures} <= set(left)


def test_fit_without_readable_source_draws_the_law_alone(tmp_path: Path, chinchilla_fit: Path) -> None:
    doc = json.loads(chinchilla_fit.read_text())
    doc["data"]["source"] = str(tmp_path / "gone.csv")
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(doc))
    report = build_report(tmp_path / "r", fits=[moved])
    stems = {f.stem for f in report.figures}
    assert stems == {"fit1_extrapolation", "fit1_isoflop"}  # no points: no residuals to show
    text = report.html.read_text()
    assert "pass --data TABLE" in text


def test_bad_inputs_raise_clear_errors(tmp_path: Path, store_root: Path) -> None:
    with pytest.raises(DataError, match="nothing to report"):
        build_report(tmp_path / "r")
    with pytest.raises(DataError, match=r"run store .* not found"):
        build_report(tmp_path / "r", store=tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        build_report(tmp_path / "file", store=store_root)
    with pytest.raises(DataError, match="coverage"):
        build_report(tmp_path / "r", store=store_root, coverage=1.5)
