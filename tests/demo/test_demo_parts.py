"""The demo's pieces without training: grids, tables, speedups, the report section, bad input.

The end-to-end run of ``scalelab demo --quick`` is in ``test_demo.py``.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from scalelab.cli.cmd_demo import main
from scalelab.curves import Curve
from scalelab.demo import FULL_GRID, QUICK_GRID, load_demo_grid
from scalelab.demo.analysis import mixture_speedups, speedup_persistence
from scalelab.demo.report_section import insert_section
from scalelab.demo.tables import DemoRun, dev_loss_columns
from scalelab.errors import DataError
from scalelab.harness.config import RunConfig
from scalelab.harness.grid import parse_grid
from scalelab.store.runs import RunStore
from scalelab.store.table import Table


def assert_clean_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


# ------------------------------------------------------------------------------ grids
@pytest.mark.parametrize(("quick", "sizes", "mixes", "steps"), [
    (False, {"mini", "small", "medium"}, {"task-heavy", "even"}, 1500),
    (True, {"small", "mini", "tiny"}, {"task-heavy"}, 600),
])
def test_grids_are_valid_run_configs(quick: bool, sizes: set[str], mixes: set[str], steps: int) -> None:
    runs = load_demo_grid(quick).runs()
    assert len(runs) == len(sizes) * len(mixes)
    assert {r.labels["size"] for r in runs} == sizes
    assert {r.labels["mix"] for r in runs} == mixes
    for r in runs:
        config = RunConfig.from_dict(r.config)  # the harness's own validation
        assert config.steps == steps
        assert set(config.data.sources) == {"addition", "code"}
    # the text written to OUT/grid.toml parses to the same runs (ids hash the configs)
    text = QUICK_GRID if quick else FULL_GRID
    again = parse_grid(tomllib.loads(text)).runs()
    assert [r.run_id for r in again] == [r.run_id for r in runs]


def test_mixtures_differ_only_in_the_task_share() -> None:
    runs = load_demo_grid().runs()
    shares = {}
    for r in runs:
        mixture = r.config["data"]["schedule"]["mixture"]
        shares[r.labels["mix"]] = mixture["code"] / sum(mixture.values())
    assert shares == {"task-heavy": 0.25, "even": 0.5}


# ------------------------------------------------------------------------------ tables
def _run(rid: str, size: str, mix: str, n: float, share: float) -> DemoRun:
    return DemoRun(rid, size, mix, n, 100, share, None)


def test_dev_loss_columns_count_text_tokens_and_skip_early_steps() -> None:
    table = Table.from_columns({
        "run": ["a", "a", "a", "b", "b", "a"],
        "split": ["eval", "eval", "eval", "eval", "eval", "train"],
        "source": ["code", "code", "addition", "code", "code", "code"],
        "metric": ["loss", "loss", "loss", "loss", "loss", "online_loss"],
        "step": [5, 50, 50, 10, 100, 50],
        "tokens": [500.0, 5000.0, 5000.0, 1000.0, 10000.0, 5000.0],
        "value": [4.0, 3.0, 1.0, 3.5, 2.5, 9.0],
    })
    runs = [_run("a", "mini", "even", 1e5, 0.5), _run("b", "small", "task-heavy", 2e5, 0.25)]
    cols = dev_loss_columns(table, runs, min_step=10)
    assert cols["run"] == ["a", "b", "b"]
    assert cols["D"] == [2500.0, 250.0, 2500.0]
    assert cols["loss"] == [3.0, 3.5, 2.5]
    assert cols["N"] == [1e5, 2e5, 2e5]
    with pytest.raises(DataError, match="no evaluation of the 'code' loss at step 1000"):
        dev_loss_columns(table, runs, min_step=1000)


# ------------------------------------------------------------------------------ speedups
def _acc_curve(run: str, midpoint_tokens: float, tokens: np.ndarray) -> Curve:
    acc = 0.9 / (1 + np.exp(-(np.log(tokens) - math.log(midpoint_tokens)) / 0.2))
    return Curve(run, "addition", "acc", np.arange(tokens.size, dtype=float), acc, tokens=tokens)


def test_mixture_speedups_per_size_and_their_trend() -> None:
    tokens = np.geomspace(1e3, 1e7, 200)
    runs, curves = [], []
    # task-heavy reaches 0.45 (its half-way) at T, even at T * ratio: speedup = ratio,
    # falling with size as 2.0, 1.6, 1.28 (x0.8 per 10x N)
    for size, n, ratio in (("s", 1e5, 2.0), ("m", 1e6, 1.6), ("l", 1e7, 1.28)):
        runs += [_run(f"{size}-th", size, "task-heavy", n, 0.25), _run(f"{size}-ev", size, "even", n, 0.5)]
        curves += [_acc_curve(f"{size}-th", 1e5, tokens), _acc_curve(f"{size}-ev", 1e5 * ratio, tokens)]
    # the level 0.5 sits a little above half-way; both runs cross it at the same offset
    speedups = mixture_speedups(curves, runs)
    assert [s.size for s in speedups] == ["s", "m", "l"]
    assert [s.speedup.status for s in speedups] == ["ok"] * 3
    np.testing.assert_allclose([s.value for s in speedups], [2.0, 1.6, 1.28], rtol=2e-3)
    p, why = speedup_persistence(speedups, target_n=1e9)
    assert why == ""
    assert p.change_per_decade == pytest.approx(0.8, rel=5e-3)
    assert p.predicted == pytest.approx(1.28 * 0.8**2, rel=1e-2)


def test_speedup_is_a_bound_when_the_even_run_never_gets_there() -> None:
    tokens = np.geomspace(1e3, 1e7, 60)
    runs = [_run("th", "s", "task-heavy", 1e5, 0.25), _run("ev", "s", "even", 1e5, 0.5)]
    flat = Curve("ev", "addition", "acc", np.arange(60.0), np.full(60, 0.01), tokens=tokens)
    (s,) = mixture_speedups([_acc_curve("th", 1e4, tokens), flat], runs)
    assert s.value is None and s.speedup.status == "baseline_not_reached"
    assert s.describe().startswith(">= ")
    p, why = speedup_persistence([s], target_n=1e9)
    assert p is None and "measured at 0 size(s)" in why


# ------------------------------------------------------------------------------ report page
def test_insert_section_goes_after_the_header_and_first_in_the_contents(tmp_path: Path) -> None:
    from scalelab.report.html import Section, page

    html = tmp_path / "index.html"
    html.write_text(page("t", [("created", "now")], [Section("curves", "Curves", ("<p>x</p>",))]))
    insert_section(html, '<section id="demo"><h2>Demo summary</h2></section>\n')
    text = html.read_text()
    assert text.index('href="#demo"') < text.index('href="#curves"')
    assert text.index("</header>") < text.index('id="demo"') < text.index('id="curves"')
    bare = tmp_path / "other.html"
    bare.write_text("<html><body>no header</body></html>")
    with pytest.raises(DataError, match="layout of a scalelab report page"):
        insert_section(bare, "<section></section>")


# ------------------------------------------------------------------------------ CLI errors
def test_out_pointing_at_a_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file.txt"
    target.write_text("not a folder")
    code = main(["demo", "-o", str(target), "--quick"])
    _, err = capsys.readouterr()
    assert_clean_error(code, err, "is a file; pass a folder")
    assert target.read_text() == "not a folder"


def test_workers_below_one_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "-o", str(tmp_path / "out"), "--workers", "0"])
    _, err = capsys.readouterr()
    assert_clean_error(code, err, "--workers must be a whole number of at least 1")
    assert not (tmp_path / "out").exists()


def test_a_store_of_another_grid_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    RunStore(out / "store").run("someone-else").start({"steps": 1})
    code = main(["demo", "-o", str(out), "--quick"])
    _, err = capsys.readouterr()
    assert_clean_error(code, err, "run(s) of another grid", "'someone-else'", "use an empty -o DIR")
