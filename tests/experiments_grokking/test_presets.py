"""The grokking presets parse and validate (no training)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from scalelab.harness.config import RunConfig, load_config
from scalelab.harness.grid import load_grid

HERE = Path(__file__).resolve().parents[2] / "experiments" / "grokking"


def test_single_run_preset_validates() -> None:
    config = load_config(HERE / "modadd_grok.toml")
    assert config.optim.weight_decay == 1.0
    assert config.optim.betas == (0.9, 0.98)
    assert config.optim.min_lr_ratio == 1.0  # constant learning rate after warmup
    src = config.data.sources["modadd"]
    assert src.kind == "modular" and src.options["op"] == "+"
    assert RunConfig.from_dict(tomllib.loads((HERE / "modadd_grok.toml").read_text())) == config


def test_weight_decay_grid_expands_and_each_cell_validates() -> None:
    runs = load_grid(HERE / "modadd_weight_decay.toml").runs()
    assert sorted(r.config["optim"]["weight_decay"] for r in runs) == [0.1, 1.0]
    configs = [RunConfig.from_dict(r.config) for r in runs]
    assert all(c.optim.min_lr_ratio == 1.0 for c in configs)


def test_single_run_preset_is_the_weight_decay_1_cell() -> None:
    (cell,) = [r for r in load_grid(HERE / "modadd_weight_decay.toml").runs()
               if r.config["optim"]["weight_decay"] == 1.0]
    d = dict(cell.config)
    d.pop("grid")
    assert RunConfig.from_dict(d) == load_config(HERE / "modadd_grok.toml")


def test_sources_build_and_fit_seq_len() -> None:
    from scalelab.harness.sources import make_source

    config = load_config(HERE / "modadd_grok.toml")
    spec = config.data.sources["modadd"]
    source = make_source(spec.kind, name="modadd", **dict(spec.options))
    assert source.min_seq_len() <= config.data.seq_len
    assert sorted(source.eval_sets(config.data.seq_len)) == ["modadd", "modadd/train"]


def test_plot_script_reads_an_export_and_finds_threshold_steps(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("grok_plot", HERE / "plot.py")
    assert spec is not None and spec.loader is not None
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)
    rows = ["run,optim.weight_decay,step,split,source,metric,value"]
    for step, train, held in [(0, 0.0, 0.0), (10, 0.995, 0.2), (100, 1.0, 0.95)]:
        rows += [f"r1,1.0,{step},eval,modadd/train,acc,{train}", f"r1,1.0,{step},eval,modadd,acc,{held}",
                 f"r1,1.0,{step},eval,modadd,loss,1.0"]
    f = tmp_path / "t.csv"
    f.write_text("\n".join(rows) + "\n")
    (run,) = plot.load_curves(str(f))
    assert run["wd"] == 1.0
    assert plot.first_step(*run["train"], 0.99) == 10
    assert plot.first_step(*run["heldout"], 0.9) == 100
    assert plot.first_step(*run["heldout"], 0.99) is None
    (line,) = plot.summarise([run])[1:]
    assert line.split()[3:6] == ["10", "100", "90"]  # train step, held-out step, delay
    never = {**run, "heldout": (run["heldout"][0], run["heldout"][1] * 0.5)}
    (line,) = plot.summarise([never])[1:]
    assert "not reached" in line and "> 90" in line  # censored at the last evaluated step
