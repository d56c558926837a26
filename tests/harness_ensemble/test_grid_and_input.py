"""Grouping grid cells into ensembles, run_grid(ensemble=...), and bad input."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from scalelab.errors import DataError
from scalelab.harness.config import RunConfig
from scalelab.harness.ensemble import ensemble_key, ensemble_problem, plan_groups, train_ensemble
from scalelab.harness.executors import LocalExecutor, execute_ensemble, run_grid
from scalelab.harness.grid import GridRun, parse_grid
from scalelab.store.runs import RunStore

from .helpers import BASE, assert_close_records, make_config


def test_groups_follow_the_architecture_and_keep_the_order() -> None:
    cfgs = [
        make_config(init_seed=0),                              # 0  tiny
        make_config(model={"size": "mini"}),                   # 1  mini
        make_config(init_seed=1, mixture={"modadd": 1}),       # 2  tiny: other data, same shape
        make_config(model={"size": "tiny", "dropout": 0.1}),   # 3  dropout: alone
        make_config(model={"size": "mini"}, data_seed=3),      # 4  mini
        make_config(steps=30),                                 # 5  another step count: alone
        make_config(init_seed=2, optim={"lr": 1e-2}),          # 6  tiny: other optimiser settings
        make_config(init_seed=3),                              # 7  tiny
        make_config(init_seed=4),                              # 8  tiny
    ]
    assert plan_groups(cfgs, None) == [[0, 2, 6, 7, 8], [1, 4], [3], [5]]
    assert plan_groups(cfgs, 3) == [[0, 2, 6], [7, 8], [1, 4], [3], [5]]  # 5 runs -> 3 + 2
    assert plan_groups(cfgs, 4) == [[0, 2, 6], [7, 8], [1, 4], [3], [5]]  # not 4 + 1
    assert plan_groups(cfgs, 1) == [[i] for i in (0, 2, 6, 7, 8, 1, 4, 3, 5)]
    assert "dropout" in (ensemble_problem(cfgs[3]) or "")
    assert ensemble_problem(make_config(compile=True)) is not None
    assert dict(ensemble_key(cfgs[0]))["model.d_model"] == 24
    with pytest.raises(DataError, match="at least 1"):
        plan_groups(cfgs, 0)


@pytest.mark.parametrize(
    ("second", "match"),
    [
        (make_config(model={"size": "mini"}), r"model\.d_model = 48 but run a has 24"),
        (make_config(data={**BASE["data"], "batch_size": 8}), r"data\.batch_size = 8"),
        (make_config(eval={"count": 5, "max_examples": 32}), r"eval\.count = 5"),
        (make_config(model={"size": "tiny", "dropout": 0.1}), r"run b cannot train in an ensemble: model\.dropout is 0\.1"),
        (make_config(data={**copy.deepcopy(BASE["data"]),
                           "sources": {"modadd": {"kind": "modular", "options": {"p": 7, "encoding": "symbols"}}},
                           "schedule": {"source": "modadd"}}),
         r"vocabulary: run b's sources need 266 token ids but run a's need 259"),
    ],
)
def test_members_that_cannot_share_an_ensemble_fail_before_anything_is_written(
        tmp_path: Path, second: RunConfig, match: str) -> None:
    store = RunStore(tmp_path / "store")
    with pytest.raises(DataError, match=match):
        train_ensemble([make_config(), second], [store.run("a"), store.run("b")])
    assert store.run_ids() == []


def test_other_bad_calls(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with pytest.raises(DataError, match="run a appears twice"):
        train_ensemble([make_config(), make_config(init_seed=1)], [store.run("a"), store.run("a")])
    with pytest.raises(DataError, match="2 configs but 1 runs"):
        train_ensemble([make_config(), make_config()], [store.run("a")])
    with pytest.raises(DataError, match="at least one run"):
        train_ensemble([], [])
    with pytest.raises(DataError, match="stop_after must be >= 0"):
        train_ensemble([make_config()], [store.run("a")], stop_after=-1)
    with pytest.raises(DataError, match="ensemble must be True, False or a number"):
        run_grid([], str(tmp_path), LocalExecutor(), ensemble=0)
    short = {**copy.deepcopy(BASE["data"]), "seq_len": 5}
    with pytest.raises(DataError, match=r"data\.seq_len is 5 but source 'modadd' needs"):
        train_ensemble([make_config(data=short), make_config(data=short, init_seed=1)], [store.run("a"), store.run("b")])
    assert store.run_ids() == []
    store.run("a").start(make_config(init_seed=7).to_dict())  # an existing run with another config
    with pytest.raises(DataError, match="differs in 'init_seed'"):
        train_ensemble([make_config(), make_config(init_seed=1)], [store.run("a"), store.run("b")])


GRID = """
name = "g"

[base]
steps = 12
checkpoint_every = 6
device = "cpu"
[base.model]
size = "tiny"
[base.optim]
lr = 3e-3
[base.data]
seq_len = 12
batch_size = 16
[base.data.sources.modadd]
kind = "modular"
options = { p = 7, train_fraction = 0.8 }
[base.data.sources.prose]
kind = "text"
options = { domain = "python_prose", eval_size = 8 }
[base.eval]
count = 5
max_examples = 32

[[axis]]
name = "size"
path = "model.size"
values = ["tiny", "mini"]

[[axis]]
name = "mix"
path = "data.schedule"
values = [{ mixture = { modadd = 3, prose = 1 } }, { mixture = { modadd = 1, prose = 3 } }]
labels = ["task", "text"]
"""


def _cells() -> list[GridRun]:
    runs = parse_grid(tomllib.loads(GRID)).runs()  # 2 sizes x 2 mixtures
    lone = tomllib.loads(GRID.replace('size = "tiny"', 'size = "tiny"\ndropout = 0.1'))
    lone["axis"] = [{"name": "seed", "path": "init_seed", "values": [5]}]
    return [*runs, *parse_grid(lone).runs()]  # + a dropout cell, which trains alone


def _records(store: Path) -> dict[str, list[dict[str, Any]]]:
    return {i: RunStore(store).run(i).read_metrics() for i in RunStore(store).run_ids()}


def test_run_grid_trains_ensembles_per_architecture_like_the_sequential_grid(tmp_path: Path) -> None:
    cells = _cells()
    plain = run_grid(cells, str(tmp_path / "plain"), LocalExecutor())
    assert plain.ok and plain.count("finished") == 5
    notes: list[str] = []
    grouped = run_grid(cells, str(tmp_path / "grouped"), LocalExecutor(), ensemble=True,
                       progress=notes.append)
    assert grouped.ok, [o.error for o in grouped.outcomes]
    assert grouped.count("finished") == 5
    assert "4 runs in 2 ensembles" in notes[0]
    store = RunStore(tmp_path / "grouped")
    tiny = [c.run_id for c in cells[:4] if c.labels["size"] == "tiny"]
    for c in cells:
        prov = store.run(c.run_id).provenance().get("ensemble")
        status = store.run(c.run_id).read_status()
        if c in cells[:4]:
            assert prov["members"] == 2 and status["ensemble"]["members"] == 2
        else:
            assert prov is None and "ensemble" not in status  # the dropout cell trained alone
    assert sorted(store.run(tiny[0]).read_status()["ensemble"]["runs"]) == sorted(tiny)
    expected, got = _records(tmp_path / "plain"), _records(tmp_path / "grouped")
    assert expected.keys() == got.keys()
    for run_id in expected:
        assert_close_records(got[run_id], expected[run_id], rel=1e-5)
    again = run_grid(cells, str(tmp_path / "grouped"), LocalExecutor(), ensemble=True)
    assert again.count("skipped") == 5


def test_a_busy_member_fails_alone(tmp_path: Path) -> None:
    cells = parse_grid(tomllib.loads(GRID)).runs()[:2]  # tiny, two mixtures
    store = RunStore(tmp_path)
    for c in cells:
        store.run(c.run_id).start(c.config)
    with store.run(cells[0].run_id).lock():  # another writer holds the first run
        outcomes = execute_ensemble(str(tmp_path), [c.run_id for c in cells], threads=1)
    assert [o.status for o in outcomes] == ["failed", "finished"]
    assert "is being run by" in outcomes[0].error
    assert store.run(cells[1].run_id).read_status()["status"] == "finished"
