"""Fits and their points, and extrapolation targets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.fit import fit
from scalelab.report.fit_data import load_fit, parse_target, resolve_target
from scalelab.store import read_table


def test_parse_target() -> None:
    assert parse_target("N=70e9, D=1.4e12") == {"N": 7e10, "D": 1.4e12}
    for bad, message in (("N70e9", "expected INPUT=VALUE"), ("N=big", "is not a number"),
                         ("N=-1", "positive finite")):
        with pytest.raises(DataError, match=message):
            parse_target(bad)


def test_points_are_read_back_from_the_bundled_source(chinchilla_fit: Path) -> None:
    f = load_fit(chinchilla_fit, key="fit1")
    assert f.points is not None and f.points.exact and not f.notes
    assert len(f.points.y) == f.result.n_points == 240
    np.testing.assert_allclose(f.points.compute, 6 * f.points.inputs["N"] * f.points.inputs["D"])


def test_data_option_is_checked_against_the_fingerprint(tmp_path: Path, chinchilla_fit: Path) -> None:
    doc = json.loads(chinchilla_fit.read_text())
    doc["data"]["source"] = str(tmp_path / "moved.csv")
    moved = tmp_path / "fit.json"
    moved.write_text(json.dumps(doc))
    alone = load_fit(moved, key="fit1")
    assert alone.points is None and "pass --data TABLE" in alone.notes[0]
    same = load_fit(moved, key="fit1", data=read_table("chinchilla"))
    assert same.points is not None and same.points.exact and len(same.points.y) == 240
    part = read_table("chinchilla").where("params_N < 1e9")
    other = load_fit(moved, key="fit1", data=part)
    assert other.points is not None and not other.points.exact
    assert "fingerprint mismatch" in other.notes[0]
    with pytest.raises(DataError, match="params_N"):
        load_fit(moved, key="fit1", data={"loss": [1.0, 2.0], "excluded_by_epoch": [0, 0]})


def test_targets(chinchilla_fit: Path) -> None:
    f = load_fit(chinchilla_fit, key="fit1")
    default, _ = resolve_target(f)
    assert default is not None and default.default and default.inputs is None
    assert default.compute == pytest.approx(10 * np.max(f.points.compute))
    chosen, _ = resolve_target(f, inputs={"N": 7e10, "D": 1.4e12})
    assert chosen is not None and chosen.compute == pytest.approx(6 * 7e10 * 1.4e12)
    with pytest.raises(DataError, match=r"no value for \['D'\]"):
        resolve_target(f, inputs={"N": 7e10})
    with pytest.raises(DataError, match=r"unknown input\(s\) \['x'\]"):
        resolve_target(f, inputs={"x": 1.0, "N": 1.0, "D": 1.0})
    with pytest.raises(DataError, match="not both"):
        resolve_target(f, inputs={"N": 1.0, "D": 1.0}, compute=1e24)


def test_one_input_law_target(tmp_path: Path) -> None:
    x = np.geomspace(1e3, 1e6, 12)
    data = {"tokens": x, "loss": 1.5 + 30 * x**-0.3}
    res = fit("power_law", data, x={"x": "tokens"}, y="loss")
    path = tmp_path / "pl.json"
    res.save(path)
    f = load_fit(path, key="fit1")  # source "table" is not readable: ranges still give a default
    assert f.points is None
    target, _ = resolve_target(f)
    assert target is not None and target.inputs == {"x": pytest.approx(1e7)}
    with pytest.raises(DataError, match="--target-compute needs a law of N and D"):
        resolve_target(f, compute=1e20)
