"""Experiment 6 (the scale caveat) on synthetic effects lists with known trends, and its CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from scalelab.errors import DataError
from tests.experiments._loader import load_experiment

SC = load_experiment("scale_caveat/run.py", "exp_scale_caveat")
SIZES = {"a": 20_000, "b": 80_000, "c": 320_000, "d": 1_280_000}


def _row(effect: str, size: str, value: float | None, *, rel: float = 0.1, kind: str = "ratio",
         note: str = "") -> dict[str, Any]:
    lo = hi = None
    if value is not None:
        lo, hi = (value / (1 + rel), value * (1 + rel)) if kind == "ratio" else (value - rel, value + rel)
    return {"effect": effect, "description": "synthetic", "kind": kind, "size": size,
            "n_params": SIZES[size], "value": value, "lower": lo, "upper": hi, "coverage": 0.9,
            "neutral": 1.0 if kind == "ratio" else 0.0, "note": note}


def _doc(tmp_path: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"experiment": name, "command": "x", "effects": rows}))
    return folder


def test_a_shrinking_speedup_vanishes_and_a_steady_one_persists(tmp_path: Path) -> None:
    # speedup 4 at 20k params, halving per 4x in size (N^-0.5), with +-3% wiggle: 4 * 640^-0.5
    # = 0.16 at the target, 10x the largest size (12.8M = 640 x 20k)
    wiggle = [1.03, 0.97, 0.98, 1.02]
    shrink = [_row("e:shrink", s, 4.0 / 2 ** i * wiggle[i]) for i, s in enumerate(SIZES)]
    steady = [_row("e:steady", s, 3.0 * (1.02 if i % 2 else 0.98)) for i, s in enumerate(SIZES)]
    results = {r["effect"]: r for r in SC.analyse([SC.read_input(_doc(tmp_path, "x", shrink + steady))])}
    s = results["e:shrink"]
    assert s["status"] == "assessed" and s["verdict"] == "vanishes" and s["weighted"]
    assert s["target_n"] == pytest.approx(10 * SIZES["d"])
    assert s["predicted"] == pytest.approx(4 * 640.0**-0.5, rel=0.1)
    assert s["change_per_decade"] == pytest.approx(10**-0.5, rel=0.05)
    assert s["low"] < s["predicted"] < s["high"] < 1.0
    t = results["e:steady"]
    assert t["verdict"] == "persists" and t["low"] > 1.0
    assert t["predicted"] == pytest.approx(3.0, rel=0.05)


def test_a_noisy_effect_near_neutral_is_undetermined() -> None:
    rows = [_row("e:flat", s, v, rel=0.5) for s, v in zip(SIZES, [1.3, 0.8, 1.4, 0.9], strict=True)]
    for r in rows:
        r["source"] = "mem"
    res = SC.assess(rows)
    assert res["status"] == "assessed" and res["verdict"] == "undetermined"
    assert res["low"] < 1.0 < res["high"]


def test_difference_effects_are_fitted_on_the_linear_scale() -> None:
    rows = [_row("e:diff", s, 0.3 - 0.1 * i, kind="difference", rel=0.02) for i, s in enumerate(SIZES)]
    for r in rows:
        r["source"] = "mem"
    res = SC.assess(rows)
    # 0.1 less per factor 4: per decade -0.1 * log(10) / log(4)
    assert res["change_per_decade"] == pytest.approx(-0.1 * math.log(10) / math.log(4), rel=1e-6)
    assert res["verdict"] == "vanishes" and res["high"] < 0


def test_censored_or_too_few_sizes_are_not_assessable(tmp_path: Path) -> None:
    cens = [_row("e:c", "a", None, note="censored: baseline never reached 0.9"),
            _row("e:c", "b", 2.0), _row("e:c", "c", 2.0)]
    two = [_row("e:two", "a", 2.0), _row("e:two", "b", 1.5)]
    res = {r["effect"]: r for r in SC.analyse([SC.read_input(_doc(tmp_path, "y", cens + two))])}
    assert res["e:c"]["status"] == "not assessable"
    assert "censored" in res["e:c"]["reason"] and "baseline never reached" in res["e:c"]["reason"]
    assert res["e:two"]["status"] == "not assessable" and "2 model size(s)" in res["e:two"]["reason"]


def test_unbounded_interval_falls_back_to_an_unweighted_fit() -> None:
    rows = [_row("e:u", s, 4.0 / 2 ** i) for i, s in enumerate(list(SIZES)[:3])]
    rows[1]["upper"] = None
    for r in rows:
        r["source"] = "mem"
    res = SC.assess(rows)
    assert res["status"] == "assessed" and not res["weighted"]
    assert any("unweighted" in n for n in res["notes"])


def test_effects_from_two_experiments_are_grouped_by_name(tmp_path: Path) -> None:
    a = _doc(tmp_path, "format", [_row("format:x", s, 2.0 + 0.01 * i) for i, s in enumerate(SIZES)])
    b = _doc(tmp_path, "curriculum", [])
    # an experiment that nests the list under "results" is read too
    rows = [_row("curriculum:y", s, 0.1, kind="difference") for s in SIZES]
    (b / "results.json").write_text(json.dumps({"command": "c", "results": {"effects": rows}}))
    res = SC.analyse([SC.read_input(a), SC.read_input(b / "results.json")])
    assert [r["effect"] for r in res] == ["curriculum:y", "format:x"]
    assert all(len(r["sizes"]) == 4 for r in res)


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"run python experiments/format/run.py --out .*format first"):
        SC.read_input(tmp_path / "format")
    bad = _doc(tmp_path, "bad", [{"effect": "e", "kind": "ratio"}])
    with pytest.raises(DataError, match="lacks description"):
        SC.analyse([SC.read_input(bad)])
    (tmp_path / "noeff").mkdir()
    (tmp_path / "noeff" / "results.json").write_text(json.dumps({"command": "python z.py"}))
    with pytest.raises(DataError, match=r"has no 'effects' list.*python z\.py"):
        SC.analyse([SC.read_input(tmp_path / "noeff")])
    with pytest.raises(DataError, match=r"no .*_full\.json has an 'effects' list"):
        SC.quick_inputs(tmp_path)


def test_cli_writes_results_and_reports_missing_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _doc(tmp_path, "format", [_row("format:x", s, 4.0 / 2 ** i) for i, s in enumerate(SIZES)])
    out = tmp_path / "out"
    assert SC.main(["--inputs", str(src), "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["command"].startswith(f"python experiments/scale_caveat/run.py --inputs {src}")
    (eff,) = doc["results"]["effects"]
    assert eff["verdict"] == "vanishes"
    assert (out / "scale_caveat.png").stat().st_size > 10_000
    assert "vanishes" in (out / "summary.md").read_text()
    capsys.readouterr()
    assert SC.main(["--inputs", str(tmp_path / "curriculum"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no results at")
    assert "python experiments/curriculum/run.py" in err[0]


def test_a_verdict_carried_by_one_narrow_interval_is_undetermined() -> None:
    # two sizes whose seeds happen to agree within 1% pull the weighted line through them (down
    # by 0.15 in log per 4x), while the largest scatters widely and sits back up: the weighted
    # fit predicts the effect gone at 10x, the unweighted one cannot tell
    measured = {"a": (20_000, 1.30, 1.29, 1.31), "b": (80_000, 1.10, 1.09, 1.11),
                "c": (200_000, 1.25, 0.6, 2.5)}
    rows = [{**_row("e:w", size, v), "n_params": n, "lower": lo, "upper": hi, "coverage": 0.9, "source": "mem"}
            for size, (n, v, lo, hi) in measured.items()]
    res = SC.assess(rows)
    assert res["status"] == "assessed" and res["weighted"]
    assert res["verdict_weighted"] != res["unweighted"]["verdict"] == "undetermined"
    assert res["verdict"] == "undetermined"
    assert any("depends on the weights" in n for n in res["notes"])
    # when both fits agree the weighted verdict stands
    steady = [_row("e:s", s, 3.0 * (1.02 if i % 2 else 0.98)) for i, s in enumerate(SIZES)]
    for r in steady:
        r["source"] = "mem"
    s = SC.assess(steady)
    assert s["verdict"] == s["verdict_weighted"] == s["unweighted"]["verdict"] == "persists"


def test_defaults_include_the_mixture_and_quick_lists_what_it_cannot_read(tmp_path: Path) -> None:
    _, paths, _, _ = SC.parse([])
    assert [p.name for p in paths] == ["format", "curriculum", "mixture"]
    (tmp_path / "format_full.json").write_text(json.dumps({"effects": [_row("format:x", "a", 2.0)]}))
    (tmp_path / "mixture_full.json").write_text(json.dumps({"results": {"fit": 1}}))
    (tmp_path / "other_full.json").write_text(json.dumps({"effects": []}))
    # the scale caveat's own committed results (assessments under results.effects) are not inputs
    (tmp_path / "scale_caveat_full.json").write_text(json.dumps({"results": {"effects": [{"effect": "x"}]}}))
    found, skipped = SC.quick_plan(tmp_path)
    assert [p.name for p in found] == ["format_full.json", "other_full.json"]
    assert skipped == ["curriculum_full.json: not committed", "mixture_full.json: no 'effects' list"]
