"""Tests for the bundled datasets (scalelab.datasets)."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest

from scalelab import datasets
from scalelab.errors import DataError
from scalelab.store import Table, read_table


def test_available() -> None:
    assert datasets.available() == ["chinchilla"]


def test_chinchilla_loads() -> None:
    table = datasets.load("chinchilla")
    assert isinstance(table, Table)
    assert table.source == "chinchilla"
    assert len(table) == 245
    assert table.columns == (
        "row_id",
        "params_N",
        "tokens_D",
        "flops_C",
        "loss",
        "excluded_by_epoch",
        "svg_x",
        "svg_y",
        "hex_color",
    )
    assert table.kind("hex_color") == "text"
    kept = table.where("excluded_by_epoch == 0")
    assert len(kept) == 240
    # the five excluded rows are the five highest losses
    excluded = table.where("excluded_by_epoch == 1").numeric("loss")
    assert np.sort(excluded).tolist() == np.sort(table.numeric("loss"))[-5:].tolist()
    # D = C / (6 N) for every row, and everything is positive for log fits
    n = table.numeric("params_N", positive=True)
    d = table.numeric("tokens_D", positive=True)
    c = table.numeric("flops_C", positive=True)
    np.testing.assert_allclose(d, c / (6 * n), rtol=1e-12)
    assert table.numeric("row_id").tolist() == list(range(245))
    loss = kept.numeric("loss", positive=True)
    assert 2.0 < loss.min() < loss.max() < 3.5


def test_read_table_by_name_matches_load() -> None:
    assert read_table("chinchilla").fingerprint() == datasets.load("chinchilla").fingerprint()


def test_bundled_file_is_unchanged_copy() -> None:
    record = datasets.info("chinchilla")
    data = resources.files("scalelab.datasets").joinpath("data", "chinchilla.csv").read_bytes()
    assert hashlib.sha256(data).hexdigest() == record["sha256"]
    assert data.startswith(b"row_id,params_N,tokens_D,flops_C,loss,excluded_by_epoch,")


def test_info_provenance() -> None:
    record = datasets.info("chinchilla")
    assert record["name"] == "chinchilla"
    assert record["rows"] == 245
    assert "2203.15556" in record["citation"]["paper"]
    assert "2404.10102" in record["citation"]["digitised_by"]
    assert record["source"]["repository"].endswith("epoch-research/analyzing-chinchilla")
    assert record["source"]["commit"].startswith("9225883")
    assert record["source"]["path"] == "data/svg_extracted_data.csv"
    assert set(record["columns"]) == set(datasets.load("chinchilla").columns)
    assert "C / (6 N)" in record["columns"]["tokens_D"]
    assert "license" in record
    # a copy: callers cannot corrupt the catalogue
    record["columns"].clear()
    assert datasets.info("chinchilla")["columns"]


def test_unknown_dataset() -> None:
    for call in (datasets.load, datasets.info):
        with pytest.raises(DataError) as info:
            call("chinchila")
        message = str(info.value)
        assert "unknown dataset 'chinchila'" in message
        assert "did you mean 'chinchilla'" in message
        assert "available: chinchilla" in message


def test_loaded_table_is_immutable_and_shared_safely() -> None:
    first = datasets.load("chinchilla")
    with pytest.raises(ValueError):
        first["loss"][0] = 0.0
    assert datasets.load("chinchilla").fingerprint() == first.fingerprint()
