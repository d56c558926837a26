"""Tests for scalelab.store.readers.read_table."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.store import Table, read_table

REPO = Path(__file__).resolve().parents[2]

# One small table with every column kind, a missing number, awkward text and tiny floats.
DATA: dict[str, list[Any]] = {
    "run": ["a", "b c", "d,e", 'q"uote'],
    "params_N": [70_000_000, 160_000_000, 410_000_000, 1_000_000_000],
    "loss": [3.25, math.nan, 2.5000000000000004, 1e-300],
    "deduped": [True, False, True, False],
}


def _cell(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def _write_delimited(path: Path, delimiter: str) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(DATA)
        for i in range(len(DATA["run"])):
            writer.writerow([_cell(DATA[name][i]) for name in DATA])


def _records() -> list[dict[str, Any]]:
    out = []
    for i in range(len(DATA["run"])):
        record = {}
        for name, values in DATA.items():
            value = values[i]
            record[name] = None if isinstance(value, float) and math.isnan(value) else value
        out.append(record)
    return out


@pytest.fixture
def reference() -> Table:
    return Table.from_columns(DATA, source="reference")


def _assert_same(table: Table, reference: Table) -> None:
    assert table.columns == reference.columns
    for name in ("params_N", "loss"):
        assert table[name].dtype == np.float64
        np.testing.assert_array_equal(table[name], reference[name])  # NaN == NaN here
    assert table["deduped"].dtype == np.bool_
    assert list(table["run"]) == DATA["run"]
    assert table.fingerprint() == reference.fingerprint()


def test_csv_round_trip(tmp_path: Path, reference: Table) -> None:
    path = tmp_path / "runs.csv"
    _write_delimited(path, ",")
    table = read_table(path)
    _assert_same(table, reference)
    assert table.source == str(path)
    assert read_table(str(path)).fingerprint() == table.fingerprint()


def test_tsv_round_trip(tmp_path: Path, reference: Table) -> None:
    path = tmp_path / "runs.tsv"
    _write_delimited(path, "\t")
    _assert_same(read_table(path), reference)


def test_jsonl_round_trip(tmp_path: Path, reference: Table) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _records()) + "\n\n", encoding="utf-8")
    _assert_same(read_table(path), reference)


def test_json_list_and_columnar(tmp_path: Path, reference: Table) -> None:
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(_records()), encoding="utf-8")
    _assert_same(read_table(path), reference)
    columnar = tmp_path / "columns.json"
    records = _records()
    columnar.write_text(
        json.dumps({name: [r[name] for r in records] for name in DATA}), encoding="utf-8"
    )
    _assert_same(read_table(columnar), reference)


def test_parquet_round_trip(tmp_path: Path, reference: Table) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "runs.parquet"
    records = _records()
    arrow = pa.table(
        {
            "run": pa.array(DATA["run"], pa.string()),
            "params_N": pa.array(DATA["params_N"], pa.int64()),
            "loss": pa.array([r["loss"] for r in records], pa.float64()),
            "deduped": pa.array(DATA["deduped"], pa.bool_()),
        }
    )
    pq.write_table(arrow, path)
    _assert_same(read_table(path), reference)


def test_pandas_round_trip(tmp_path: Path, reference: Table) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(DATA)
    _assert_same(read_table(frame), reference)
    assert read_table(frame).source == "the DataFrame"
    assert read_table(frame, label="mine").source == "mine"
    # pandas' own lossless writers agree with our readers (its to_json rounds floats)
    frame.to_csv(tmp_path / "p.csv", index=False)
    _assert_same(read_table(tmp_path / "p.csv"), reference)
    pytest.importorskip("pyarrow")
    frame.to_parquet(tmp_path / "p.parquet")
    _assert_same(read_table(tmp_path / "p.parquet"), reference)


def test_pandas_nullable_and_duplicate_columns() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"), "s": ["x", None, "z"]})
    table = read_table(frame)
    assert table["n"].dtype == np.float64 and np.isnan(table["n"][1])
    assert list(table["s"]) == ["x", "", "z"]
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataError, match=r"repeated column names \(a\)"):
        read_table(dup)


def test_duck_typed_frame_without_pandas(reference: Table) -> None:
    class Column:
        def __init__(self, values: list[Any]) -> None:
            self.values = values

        def to_numpy(self) -> np.ndarray:
            return np.asarray(self.values, dtype=object)

    class Frame:
        columns = tuple(DATA)

        def __getitem__(self, key: str) -> Column:
            return Column(DATA[key])

    _assert_same(read_table(Frame()), reference)


def test_mapping_and_table_inputs(reference: Table) -> None:
    table = read_table(DATA)
    _assert_same(table, reference)
    assert table.source == "the mapping"
    assert read_table(reference) is reference


def test_csv_inference_details(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "\ufeffa, b ,c,d,e\n1,NA,x,TRUE,\n2e3,null,7,false,\n-inf,4,y,True,\n\n",
        encoding="utf-8",
    )
    table = read_table(path)
    assert table.columns == ("a", "b", "c", "d", "e")  # BOM and spaces stripped
    assert table["a"].tolist() == [1.0, 2000.0, -math.inf]
    assert np.isnan(table["b"][:2]).all() and table["b"][2] == 4.0
    assert list(table["c"]) == ["x", "7", "y"]
    assert table["d"].tolist() == [True, False, True]
    assert np.isnan(table["e"]).all()


def test_no_pandas_or_pyarrow_imported() -> None:
    code = (
        "import sys\n"
        "import scalelab.store, scalelab.datasets\n"
        "from scalelab.store import read_table\n"
        "t = read_table('chinchilla').where('excluded_by_epoch == 0')\n"
        "bad = [m for m in ('pandas', 'pyarrow', 'polars') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print(len(t))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "240"


def test_dataset_name_and_file_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = read_table("chinchilla")
    assert len(table) == 245 and table.source == "chinchilla"
    assert read_table("chinchilla", label="chin").source == "chin"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "chinchilla").write_text("x\n1\n", encoding="utf-8")
    with pytest.raises(DataError, match="no file extension"):
        read_table("chinchilla")  # an existing file wins over the dataset name


# -- errors -------------------------------------------------------------------------------


def _error(source: Any) -> str:
    with pytest.raises(DataError) as info:
        read_table(source)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.__cause__ is None
    return message


def test_missing_file_suggests_datasets(tmp_path: Path) -> None:
    message = _error(tmp_path / "nope.csv")
    assert message.startswith(f"file not found: {tmp_path / 'nope.csv'}")
    assert "bundled dataset: chinchilla" in message
    assert "did you mean the bundled dataset 'chinchilla'" in _error("chinchila")


def test_directory(tmp_path: Path) -> None:
    assert "is a directory, not a data file" in _error(tmp_path)


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "runs.xlsx"
    path.write_bytes(b"whatever")
    message = _error(path)
    assert "unknown file type '.xlsx'" in message
    assert ".csv, .tsv, .jsonl, .json or .parquet" in message


def test_binary_and_undecodable(tmp_path: Path) -> None:
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"a,b\n\x00\x01\x02\x03")
    assert "looks like a binary file" in _error(binary)
    latin = tmp_path / "l.csv"
    latin.write_bytes("name\ncaf\u00e9\n".encode("latin-1"))
    message = _error(latin)
    assert "is not UTF-8 text" in message and "re-save it with UTF-8" in message
    parquet_named_csv = tmp_path / "p.csv"
    parquet_named_csv.write_bytes(b"PAR1\x15\x04rest")
    assert "rename it to .parquet" in _error(parquet_named_csv)


def test_csv_inconsistent_columns_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n", encoding="utf-8")
    message = _error(path)
    assert "line 3 has 2 fields but the header has 3" in message
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("a\tb\n1\t2\t3\n", encoding="utf-8")
    assert "line 2 has 3 fields" in _error(tsv) and "tab" in _error(tsv)


def test_csv_line_numbers_count_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('a,b\n"multi\nline",1\n2\n', encoding="utf-8")
    assert "line 4 has 1 fields" in _error(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("a,b,c\n", "has a header but no data rows"),
        ("a,,c\n1,2,3\n", "column 2 of the header has no name"),
        ("a,b,a\n1,2,3\n", "names column 'a' twice"),
    ],
)
def test_csv_structure_errors(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(content, encoding="utf-8")
    assert expected in _error(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"a": 1}\n{"a": 2,}\n', "line 2 is not valid JSON"),
        ('{"a": 1}\n\n[1, 2]\n', "line 3 holds a JSON list, not an object"),
        ('{"a": [1, 2]}\n', "line 1 field 'a' holds a JSON list"),
        ("\n  \n", "is empty"),
    ],
)
def test_jsonl_errors(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(content, encoding="utf-8")
    assert expected in _error(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"a": 1}, {"a": ]', "is not valid JSON"),
        ('{"a": 1}\n{"a": 2}\n', "rename it to .jsonl"),
        ("[]", "empty list"),
        ('[{"a": 1}, 2]', "record 1 is a JSON number"),
        ('"text"', "holds a JSON string"),
        ("", "is empty"),
    ],
)
def test_json_errors(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content, encoding="utf-8")
    assert expected in _error(path)


def test_unreadable_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "x.parquet"
    path.write_bytes(b"this is not parquet at all")
    message = _error(path)
    assert message.startswith(f"cannot read Parquet file {path}")
    assert "valid Parquet file" in message


def test_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert "pip install 'scalelab[parquet]'" in _error(path)


def test_unsupported_object() -> None:
    message = _error(42)
    assert "cannot read a table from a int" in message and "chinchilla" in message
    assert "path is empty" in _error("")
