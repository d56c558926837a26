"""RunConfig: strict validation with clear messages, defaults, round trips, TOML loading."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from scalelab.errors import DataError
from scalelab.harness.config import SIZE_LADDER, RunConfig, load_config

BASE: dict[str, Any] = {
    "steps": 100,
    "model": {"size": "tiny"},
    "data": {
        "seq_len": 16,
        "batch_size": 8,
        "sources": {"modadd": {"kind": "modular", "options": {"p": 7}},
                    "text": {"kind": "text", "options": {"domain": "python_prose"}}},
        "schedule": {"mixture": {"modadd": 1, "text": 1}},
    },
}


def with_(path: str, value: Any, base: dict[str, Any] = BASE) -> dict[str, Any]:
    d = copy.deepcopy(base)
    node = d
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return d


def without(path: str) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    node = d
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    del node[keys[-1]]
    return d


def error(d: dict[str, Any]) -> str:
    with pytest.raises(DataError) as info:
        RunConfig.from_dict(d)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_defaults_are_filled_and_round_trip() -> None:
    cfg = RunConfig.from_dict(BASE)
    assert cfg.optim.lr == 1e-3 and cfg.optim.betas == (0.9, 0.95)
    assert cfg.eval.count == 16 and cfg.device == "auto" and cfg.block_size == 16
    assert cfg.model.dims() == SIZE_LADDER["tiny"]
    assert cfg.data.schedule.mixture == {"modadd": 1.0, "text": 1.0}
    d = cfg.to_dict()
    assert RunConfig.from_dict(d) == cfg
    assert d["optim"]["betas"] == [0.9, 0.95]
    import json

    json.dumps(d, allow_nan=False)  # plain JSON


def test_explicit_dims_and_curriculum_round_trip() -> None:
    d = with_("model", {"n_layer": 2, "n_head": 4, "d_model": 32, "block_size": 64})
    d = with_("data.schedule", {"curriculum": [{"steps": 40, "weights": {"text": 1}},
                                               {"fraction": 0.3, "weights": {"modadd": 1}},
                                               {"weights": {"modadd": 1, "text": 1}}]}, d)
    cfg = RunConfig.from_dict(d)
    assert cfg.model.dims().d_model == 32 and cfg.block_size == 64
    assert cfg.data.schedule.curriculum is not None and len(cfg.data.schedule.curriculum) == 3
    assert cfg.data.schedule.config()["curriculum"][1] == {"weights": {"modadd": 1.0}, "fraction": 0.3}
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_schedule_defaults_to_uniform_over_sources() -> None:
    cfg = RunConfig.from_dict(without("data.schedule"))
    assert cfg.data.schedule.mixture == {"modadd": 1.0, "text": 1.0}
    one = RunConfig.from_dict(with_("data.schedule", {"source": "text"}))
    assert one.data.schedule.config() == {"mixture": {"text": 1.0}}


def test_grid_metadata_is_kept() -> None:
    d = with_("grid", {"name": "g", "labels": {"size": "tiny"}})
    assert RunConfig.from_dict(d).to_dict()["grid"] == {"name": "g", "labels": {"size": "tiny"}}


def test_with_device() -> None:
    cfg = RunConfig.from_dict(BASE).with_device("cpu")
    assert cfg.device == "cpu"
    with pytest.raises(DataError, match="unknown device"):
        cfg.with_device("tpu")


@pytest.mark.parametrize(
    ("d", "fragments"),
    [
        (with_("optim.learnig_rate", 0.1), ["'optim.learnig_rate'", "did you mean 'lr'"]),
        (with_("optim.weight_decy", 0.1), ["'optim.weight_decy'", "did you mean 'weight_decay'"]),
        (with_("model.n_embd", 64), ["'model.n_embd'", "did you mean 'd_model'"]),
        (with_("stepz", 3), ["'stepz'", "did you mean 'steps'"]),
        (with_("data.sources.modadd.optons", {}), ["'data.sources.modadd.optons'", "did you mean 'options'"]),
        (with_("data.schedule", {"curriculum": [{"step": 3, "weights": {"text": 1}}, {"weights": {"text": 1}}]}),
         ["'data.schedule.curriculum[0].step'", "did you mean 'steps'"]),
        (with_("data.schedule", {"weights": {"text": 1}}), ["'data.schedule.weights'", "did you mean 'mixture'"]),
    ],
)
def test_unknown_keys_name_the_dotted_path_and_a_suggestion(d: dict[str, Any], fragments: list[str]) -> None:
    msg = error(d)
    assert "unknown key" in msg
    for frag in fragments:
        assert frag in msg, msg


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("steps", "100", "steps must be an integer"),
        ("steps", 10.0, "steps must be an integer"),
        ("steps", True, "steps must be an integer"),
        ("optim.lr", "fast", "optim.lr must be a number"),
        ("optim.betas", [0.9], "optim.betas must be a list of two numbers"),
        ("compile", "yes", "compile must be true or false"),
        ("data.batch_size", 8.5, "data.batch_size must be an integer"),
        ("model", "tiny", "model must be a table"),
        ("data.sources.modadd.options", [1], "data.sources.modadd.options must be a table"),
        ("device", "tpu", "device must be one of auto, cpu, cuda"),
    ],
)
def test_wrong_types(path: str, value: Any, fragment: str) -> None:
    assert fragment in error(with_(path, value))


@pytest.mark.parametrize(
    ("d", "fragment"),
    [
        (with_("model", {"n_layer": 2, "n_head": 3, "d_model": 32}), "model.d_model 32 is not divisible by model.n_head 3"),
        (with_("model", {"n_layer": 2, "n_head": 2}), "missing d_model"),
        (with_("model", {"size": "tiny", "d_model": 32}), "gives both size"),
        (with_("model.size", "gigantic"), "model.size must be one of tiny"),
        (with_("steps", 0), "steps must be positive"),
        (with_("data.batch_size", -1), "data.batch_size must be positive"),
        (with_("data.seq_len", 1), "data.seq_len must be at least 2"),
        (with_("model.block_size", 8), "data.seq_len (16) exceeds model.block_size (8)"),
        (with_("optim.warmup_steps", 500), "optim.warmup_steps (500) exceeds steps (100)"),
        (with_("optim.min_lr_ratio", 2), "optim.min_lr_ratio must be <= 1"),
        (with_("model.dropout", 1.0), "model.dropout must be < 1"),
        (with_("eval.count", 1), "eval.count must be at least 2"),
    ],
)
def test_impossible_sizes(d: dict[str, Any], fragment: str) -> None:
    assert fragment in error(d)


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ({"mixture": {}}, "data.schedule.mixture is empty"),
        ({"mixture": {"modadd": 0, "text": 0}}, "weights that sum to 0"),
        ({"mixture": {"modadd": -1, "text": 2}}, "data.schedule.mixture.modadd must be >= 0"),
        ({"mixture": {"modad": 1}}, "names source 'modad', which is not in data.sources; did you mean 'modadd'"),
        ({"mixture": {"modadd": 1}, "curriculum": []}, "exactly one of 'mixture'"),
        ({"source": "txt"}, "data.schedule.source names source 'txt', which is not in data.sources; did you mean 'text'"),
        ({"curriculum": []}, "data.schedule.curriculum must be a non-empty list"),
        ({"curriculum": [{"steps": 10, "weights": {}}, {"weights": {"text": 1}}]}, "data.schedule.curriculum[0].weights is empty"),
        ({"curriculum": [{"steps": 10, "weights": {"text": 0}}, {"weights": {"text": 1}}]}, "data.schedule.curriculum[0].weights has weights that sum to 0"),
        ({"curriculum": [{"steps": 10}, {"weights": {"text": 1}}]}, "data.schedule.curriculum[0] has no weights"),
        ({"curriculum": [{"weights": {"text": 1}}, {"weights": {"text": 1}}]}, "only the last phase may"),
        ({"curriculum": [{"steps": 100, "weights": {"text": 1}}, {"weights": {"modadd": 1}}]}, "curriculum phase 1 gets no steps"),
        ({"curriculum": [{"fraction": 1.0, "weights": {"text": 1}}, {"weights": {"modadd": 1}}]}, "curriculum phase 1 gets no steps"),
        ({"curriculum": [{"steps": 10, "weights": {"text": 1}}, {"steps": 20, "weights": {"modadd": 1}}]}, "phases cover 30 steps but the run has 100"),
    ],
)
def test_bad_schedules(schedule: dict[str, Any], fragment: str) -> None:
    assert fragment in error(with_("data.schedule", schedule))


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("data.sources.modadd.kind", "modulr", "data.sources.modadd.kind 'modulr' is not a source kind; did you mean 'modular'"),
        ("data.sources.modadd.options", {"pp": 7}, "unknown key 'data.sources.modadd.options.pp'; did you mean 'p'"),
        ("data.sources.modadd.options", {"name": "x"}, "a source is named by its key"),
        ("data.sources.text.options", {}, "data.sources.text.options is missing domain"),
    ],
)
def test_bad_sources(path: str, value: Any, fragment: str) -> None:
    assert fragment in error(with_(path, value))


def test_empty_sources() -> None:
    assert "data.sources must be a non-empty table" in error(with_("data.sources", {}))


def test_missing_required() -> None:
    assert "missing required key 'steps'" in error(without("steps"))
    assert "missing required table 'data'" in error(without("data"))
    assert "missing required key 'data.seq_len'" in error(without("data.seq_len"))


def test_load_toml(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        'steps = 50\ndata_seed = 3\n[model]\nsize = "mini"\n[optim]\nlr = 3e-3\nbetas = [0.9, 0.98]\n'
        '[data]\nseq_len = 16\nbatch_size = 4\n[data.sources."text/py"]\nkind = "text"\noptions = { domain = "python_code" }\n'
        '[data.schedule]\nmixture = { "text/py" = 1 }\n'
    )
    cfg = load_config(path)
    assert cfg.steps == 50 and cfg.data_seed == 3 and cfg.optim.betas == (0.9, 0.98)
    assert list(cfg.data.sources) == ["text/py"]
    path.write_text("steps = \n")
    with pytest.raises(DataError, match="is not valid TOML"):
        load_config(path)
    with pytest.raises(DataError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_the_documented_example_config_is_valid() -> None:
    import re
    import tomllib

    doc = (Path(__file__).resolve().parents[2] / "docs" / "harness.md").read_text()
    block = re.search(r"```toml\n(.+?)\n```", doc, flags=re.S)
    assert block is not None
    cfg = RunConfig.from_dict(tomllib.loads(block.group(1)))
    assert cfg.model.size == "mini" and cfg.steps == 400 and set(cfg.data.sources) == {"modadd", "prose"}
