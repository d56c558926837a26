from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.errors import DataError
from scalelab.harness.grid import load_grid, parse_grid

GRID = """
name = "demo"

[base]
steps = 10
[base.model]
size = "tiny"

[[axis]]
name = "size"
path = "model.size"
values = ["tiny", "small"]

[[axis]]
name = "mix"
path = "data.schedule"
values = [{ mixture = { a = 0.5, b = 0.5 } }, { mixture = { a = 0.9, b = 0.1 } }]
labels = ["even", "skewed"]

[[axis]]
name = "seed"
paths = ["init_seed", "data_seed"]
values = [0, 1]
"""


def test_grid_expands_to_the_product_with_stable_ids(tmp_path: Path) -> None:
    f = tmp_path / "g.toml"
    f.write_text(GRID)
    runs = load_grid(f).runs()
    assert len(runs) == 8
    again = load_grid(f).runs()
    assert [r.run_id for r in runs] == [r.run_id for r in again]
    assert len({r.run_id for r in runs}) == 8
    first = runs[0]
    assert first.config["model"]["size"] == "tiny"
    assert first.config["data"]["schedule"] == {"mixture": {"a": 0.5, "b": 0.5}}
    assert first.config["init_seed"] == first.config["data_seed"] == 0
    assert first.labels == {"size": "tiny", "mix": "even", "seed": "0"}
    assert first.run_id.startswith("demo_size-tiny_mix-even_seed-0_")


def test_changing_the_config_changes_the_id(tmp_path: Path) -> None:
    f = tmp_path / "g.toml"
    f.write_text(GRID)
    ids = {r.run_id for r in load_grid(f).runs()}
    f.write_text(GRID.replace("steps = 10", "steps = 20"))
    assert ids.isdisjoint({r.run_id for r in load_grid(f).runs()})


def test_base_is_not_mutated_between_cells() -> None:
    import tomllib

    grid = parse_grid(tomllib.loads(GRID))
    runs = grid.runs()
    runs[0].config["model"]["size"] = "changed"
    assert grid.base["model"]["size"] == "tiny"
    assert runs[1].config["model"]["size"] == "tiny"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name = 'x'\n", r"\[base\]"),
        ("colour = 1\n[base]\nsteps = 1\n", "unknown top-level key"),
        ("[base]\nsteps=1\n[[axis]]\nvalues=[1]\n", "exactly one of 'path' or 'paths'"),
        ("[base]\nsteps=1\n[[axis]]\npath='steps'\nvalues=[]\n", "non-empty list"),
        ("[base]\nsteps=1\n[[axis]]\npath='steps'\nvalues=[1,2]\nlabels=['a']\n", "one label per value"),
        ("[base]\nsteps=1\n[[axis]]\npath='steps'\nvalues=[1,2]\nlabels=['a','a']\n", "distinct"),
        ("[base]\nsteps=1\n[[axis]]\npath='steps.x'\nvalues=[1]\n", "is a value, not a table"),
        ("[base]\nsteps=1\n[[axis]]\npath='steps'\nvalues=[1, 1]\nlabels=['a','b']\n", "identical"),
        ("[base\n", "not valid TOML"),
    ],
)
def test_bad_grids_fail_clearly(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "g.toml"
    f.write_text(text)
    with pytest.raises(DataError, match=match):
        load_grid(f).runs()


def test_missing_grid_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_grid(tmp_path / "nope.toml")
