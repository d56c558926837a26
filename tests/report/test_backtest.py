"""Reading scalelab.backtest/1 files: a real backtest parses, every malformed field is named."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from scalelab.errors import DataError
from scalelab.report import load_backtest, parse_backtest
from scalelab.report.backtest_figure import backtest_axis


def test_real_backtest_round_trips(backtest_file: Path, backtest_doc: dict[str, Any]) -> None:
    bt = load_backtest(backtest_file)
    assert bt.law == "chinchilla" and bt.y == "loss" and bt.x == {"N": "params_N", "D": "tokens_D"}
    assert bt.n_holdout == len(bt.rows) == len(backtest_doc["rows"])
    assert bt.metrics == backtest_doc["metrics"]
    first = backtest_doc["rows"][0]
    assert bt.rows[0].y == first["y"] and bt.rows[0].inside is first["inside"]
    assert bt.rows[0].relative_error == pytest.approx(first["yhat"] / first["y"] - 1)
    assert bt.fit.law.name == "chinchilla" and bt.fit.n_points == backtest_doc["n_fit"]
    # held-out Chinchilla runs above 3e9 parameters, predicted from runs below 1e9
    assert bt.n_fit == 118 and bt.n_holdout == 23
    x, label = backtest_axis(bt)
    assert label.startswith("training compute") and x[0] == pytest.approx(
        6 * first["inputs"]["N"] * first["inputs"]["D"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(schema="scalelab.fit/1"), "expected 'scalelab.backtest/1'"),
        (lambda d: d.pop("metrics"), "no 'metrics' field"),
        (lambda d: d["metrics"].update(coverage="high"), "'coverage' must be a finite number"),
        (lambda d: d.update(n_fit=2.5), "'n_fit' must be a non-negative whole number"),
        (lambda d: d.update(coverage_level=95), "coverage_level must be between 0 and 1"),
        (lambda d: d.update(x=[]), "'x' must be a JSON object"),
        (lambda d: d["rows"][1]["inputs"].pop("D"), "row 1: inputs lack ['D']"),
        (lambda d: d["rows"][0].update(inside="yes"), "'inside' must be true or false"),
        (lambda d: d["fit"].update(schema="nope"), "its 'fit' is not a scalelab fit"),
    ],
)
def test_malformed_fields_are_named(backtest_doc: dict[str, Any], edit: Any, message: str) -> None:
    doc = copy.deepcopy(backtest_doc)
    edit(doc)
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        parse_backtest(doc, source="bt.json")


def test_missing_interval_is_allowed(backtest_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(backtest_doc)
    doc["rows"][0]["lower"] = doc["rows"][0]["upper"] = None
    row = parse_backtest(doc).rows[0]
    assert row.lower != row.lower and row.upper != row.upper  # NaN: no interval


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_backtest(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_backtest(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="not a JSON object"):
        load_backtest(bad)
