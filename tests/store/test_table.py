"""Tests for scalelab.store.table.Table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.store import Table


@pytest.fixture
def runs() -> Table:
    return Table.from_columns(
        {
            "params_N": [1e8, 2e8, 4e8, 8e8],
            "step": [1, 2, 3, 4],
            "loss": [3.5, -0.2, 2.9, 2.5],
            "model": ["a", "b", "c", "d"],
            "deduped": [True, False, True, False],
        },
        source="runs",
    )


def test_column_kinds(runs: Table) -> None:
    assert runs.columns == ("params_N", "step", "loss", "model", "deduped")
    assert runs["step"].dtype == np.float64  # ints are stored as floats
    assert runs["deduped"].dtype == np.bool_
    assert runs["model"].dtype == object
    assert [runs.kind(c) for c in runs.columns] == ["numeric", "numeric", "numeric", "text", "bool"]
    assert len(runs) == 4
    assert "loss" in runs and "nope" not in runs
    assert list(runs) == list(runs.columns)
    assert runs.source == "runs"


def test_mixed_and_missing_values() -> None:
    table = Table.from_columns(
        {
            "num": [1, None, 2.5],
            "flag_missing": [True, None, False],
            "mixed": [1, "x", None],
            "empty": [None, None, None],
            "np_int": np.array([1, 2, 3], dtype=np.int32),
            "np_str": np.array(["a", "b", "c"]),
        }
    )
    assert np.isnan(table["num"][1]) and table["num"][2] == 2.5
    assert table["flag_missing"].dtype == np.float64
    assert list(table["mixed"]) == ["1", "x", ""]
    assert np.isnan(table["empty"]).all()
    assert table["np_int"].dtype == np.float64
    assert list(table["np_str"]) == ["a", "b", "c"]


def test_immutable(runs: Table) -> None:
    with pytest.raises(ValueError):
        runs["loss"][0] = 1.0
    with pytest.raises(AttributeError):
        runs.source = "other"  # type: ignore[misc]


def test_input_arrays_are_copied() -> None:
    values = np.array([1.0, 2.0])
    table = Table.from_columns({"x": values})
    values[0] = 99.0
    assert table["x"][0] == 1.0
    assert values.flags.writeable


def test_unknown_column_lists_available_and_suggests(runs: Table) -> None:
    with pytest.raises(DataError) as info:
        runs.column("parms_N")
    message = str(info.value)
    assert "unknown column 'parms_N' in runs" in message
    assert "did you mean 'params_N'" in message
    assert "available: params_N, step, loss, model, deduped" in message
    with pytest.raises(DataError, match="unknown column 'zzz'"):
        runs["zzz"]


def test_construction_errors() -> None:
    with pytest.raises(DataError, match="different lengths"):
        Table.from_columns({"a": [1, 2], "b": [1]})
    with pytest.raises(DataError, match="single str"):
        Table.from_columns({"a": "abc"})
    with pytest.raises(DataError, match="one-dimensional"):
        Table.from_columns({"a": np.zeros((2, 2))})
    with pytest.raises(DataError, match="nested"):
        Table.from_columns({"a": [[1], [2]]})
    with pytest.raises(DataError, match="empty name"):
        Table.from_columns({" ": [1]})
    with pytest.raises(DataError, match="mapping"):
        Table.from_columns([("a", [1])])  # type: ignore[arg-type]


def test_select_filter_to_dict(runs: Table) -> None:
    small = runs.select(["loss", "params_N"])
    assert small.columns == ("loss", "params_N")
    with pytest.raises(DataError, match="unknown column 'los'"):
        runs.select(["los"])
    kept = runs.filter(runs["params_N"] > 1.5e8)
    assert len(kept) == 3
    assert list(kept.row_numbers) == [1, 2, 3]
    data = kept.to_dict()
    data["loss"][0] = 123.0  # a writable copy
    assert kept["loss"][0] == -0.2
    with pytest.raises(DataError, match="true/false"):
        runs.filter([1, 0, 1, 0])
    with pytest.raises(DataError, match="4 rows"):
        runs.filter(np.array([True, False]))
    assert len(runs.filter(np.zeros(4, dtype=bool))) == 0


def test_repr_is_short(runs: Table) -> None:
    text = repr(runs)
    assert text.startswith("Table(source='runs', rows=4, columns=[params_N")
    wide = Table.from_columns({f"c{i}": [1] for i in range(30)})
    assert len(repr(wide)) < 150


def test_numeric_ok(runs: Table) -> None:
    values = runs.numeric("params_N", positive=True)
    assert values.dtype == np.float64
    values[0] = 0.0  # a fresh writable copy
    assert runs["params_N"][0] == 1e8
    assert runs.numeric("deduped").tolist() == [1.0, 0.0, 1.0, 0.0]
    assert Table.from_columns({"s": ["1.5", " 2 "]}).numeric("s").tolist() == [1.5, 2.0]


def test_numeric_non_positive_names_column_count_and_row(runs: Table) -> None:
    runs.numeric("loss")  # fine without positive
    with pytest.raises(DataError) as info:
        runs.numeric("loss", positive=True)
    assert str(info.value) == (
        "column 'loss' has 1 non-positive value(s) (first at row 1: -0.2); "
        'log residuals need values > 0: filter them with --where "loss > 0"'
    )


def test_numeric_row_numbers_survive_filtering() -> None:
    table = Table.from_columns({"x": [1.0, 2.0, 3.0, 0.0, -1.0]}, source="t")
    with pytest.raises(DataError, match=r"2 non-positive value\(s\) \(first at row 3: 0.0\)"):
        table.filter(table["x"] != 2.0).numeric("x", positive=True)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            [1.0, math.nan, math.nan],
            r"2 missing or NaN value\(s\) \(first at row 1: nan\).*isnan\(x\)",
        ),
        ([1.0, math.inf, 2.0], r"1 infinite value\(s\) \(first at row 1: inf\).*isfinite\(x\)"),
        (["1", "two", "3"], r"1 non-numeric value\(s\) \(first at row 1: 'two'\)"),
        (["1", "", "3"], r"1 missing or NaN value\(s\) \(first at row 1: empty\)"),
    ],
)
def test_numeric_bad_values(values: list[object], expected: str) -> None:
    table = Table.from_columns({"x": values})
    with pytest.raises(DataError, match=r"column 'x' has " + expected):
        table.numeric("x")


def test_numeric_backquotes_awkward_names_in_hint() -> None:
    table = Table.from_columns({"val loss": [1.0, -1.0]})
    with pytest.raises(DataError, match='--where "`val loss` > 0"'):
        table.numeric("val loss", positive=True)


def test_fingerprint_is_content_only() -> None:
    a = Table.from_columns({"x": [1, 2, math.nan], "s": ["a", "b", "c"]}, source="one")
    b = Table.from_columns({"x": [1.0, 2.0, float("nan")], "s": ["a", "b", "c"]}, source="two")
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64
    assert a.fingerprint() == a.fingerprint()
    assert (
        Table.from_columns({"x": [0.0]}).fingerprint()
        == Table.from_columns({"x": [-0.0]}).fingerprint()
    )
    different = [
        Table.from_columns({"x": [1, 2, 3], "s": ["a", "b", "c"]}),  # value
        Table.from_columns({"y": [1, 2, math.nan], "s": ["a", "b", "c"]}),  # name
        Table.from_columns({"s": ["a", "b", "c"], "x": [1, 2, math.nan]}),  # order
        Table.from_columns({"x": [1, 2, math.nan], "s": ["ab", "", "c"]}),  # string split
        Table.from_columns({"x": ["1", "2", ""], "s": ["a", "b", "c"]}),  # kind
    ]
    prints = {t.fingerprint() for t in different}
    assert len(prints) == len(different)
    assert a.fingerprint() not in prints


def test_fingerprint_distinguishes_bool_and_float() -> None:
    as_bool = Table.from_columns({"f": [True, False]})
    as_float = Table.from_columns({"f": [1.0, 0.0]})
    assert as_bool.fingerprint() != as_float.fingerprint()
