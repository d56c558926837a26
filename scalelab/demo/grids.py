"""The demo's grids, embedded as TOML text so the file written to ``OUT/grid.toml`` is the one run.

Both grids train small GPTs (scalelab's size ladder) on a mixture of two sources:

* ``addition``: two-digit addition with the sum written least-significant digit first (the
  "reverse" format of Lee et al. 2023, "Teaching Arithmetic to Small Transformers"). Its
  exact-match accuracy on 256 held-out pairs sits near 0 for hundreds of steps and then jumps
  to 0.8-1.0: the skill whose emergence the demo measures.
* ``code``: byte-level Python source from the running interpreter's standard library; its
  held-out loss is the dev loss the scaling law is fitted to.

The full grid crosses 3 sizes with 2 mixtures (task-heavy: 3 addition rows per code row; even:
1 to 1). Settings were chosen by measurement (docs/demo.md): with 1,500 steps of 64 rows at
learning rate 3e-3 every run's accuracy rises from chance to at least 0.8; with fewer steps, a
smaller batch or the ``tiny`` rung, some runs stay at chance. The quick grid (``--quick``) is a
smoke test of the same setup: the 3 cheapest sizes, one mixture and 600 steps, where the skill
only starts to emerge in the largest run (accuracy 0.34 at the last step).
"""

from __future__ import annotations

from pathlib import Path

from scalelab._io import atomic_write_text
from scalelab.errors import DataError
from scalelab.harness.grid import Grid, parse_grid

__all__ = ["FULL_GRID", "QUICK_GRID", "TARGET_SIZE", "grid_text", "load_demo_grid", "write_grid"]

#: rung of the size ladder the demo predicts (larger than every trained size)
TARGET_SIZE = "large"

_HEADER = """\
# {title}
# Written by `scalelab demo{flag}`; rerun the grid alone (finished runs are skipped) with
#   scalelab grid grid.toml --store store --workers 2
# Sources: "addition" = 2-digit addition, sum written backwards (Lee et al. 2023), whose
# exact-match accuracy jumps from ~0 to 0.8-1.0 inside the run; "code" = byte-level Python
# source from the standard library, whose held-out loss is the dev loss of the scaling law.
name = "{name}"

[base]
steps = {steps}
checkpoint_every = {checkpoint_every}
device = "cpu"

[base.model]
size = "mini"

[base.optim]
lr = 3e-3
weight_decay = 0.1
warmup_steps = 50
min_lr_ratio = 0.1
grad_clip = 1.0

[base.data]
seq_len = 16          # code windows of 15 bytes; an addition example needs 11
batch_size = 64

[base.data.sources.addition]
kind = "addition"
options = {{ digits = 2, format = "reverse", eval_size = 256 }}

[base.data.sources.code]
kind = "text"
options = {{ domain = "python_code" }}

[base.data.schedule]
mixture = {{ addition = 3, code = 1 }}

[base.eval]
count = {eval_count}          # log-spaced evaluations, dense early
max_examples = 256

[[axis]]
name = "size"
path = "model.size"
values = {sizes}
"""

_MIX_AXIS = """
[[axis]]
name = "mix"
path = "data.schedule"
values = [{ mixture = { addition = 3, code = 1 } }, { mixture = { addition = 1, code = 1 } }]
labels = ["task-heavy", "even"]
"""

_ONE_MIX_AXIS = """
[[axis]]
name = "mix"
path = "data.schedule"
values = [{ mixture = { addition = 3, code = 1 } }]
labels = ["task-heavy"]
"""

#: the full demo: 3 sizes x 2 mixtures x 1 seed
FULL_GRID = _HEADER.format(
    title="scalelab demo grid: 3 model sizes x 2 data mixtures x 1 seed = 6 runs.",
    flag="",
    name="demo",
    steps=1500,
    checkpoint_every=500,
    eval_count=40,
    sizes='["mini", "small", "medium"]',
) + _MIX_AXIS

#: the smoke test behind ``--quick``: 3 sizes x 1 mixture, shorter runs
QUICK_GRID = _HEADER.format(
    title="scalelab demo --quick grid: 3 model sizes x 1 mixture, short runs (a smoke test).",
    flag=" --quick",
    name="demo-quick",
    steps=600,
    checkpoint_every=300,
    eval_count=16,
    # largest first: with 2 workers, "small" trains beside "mini" then "tiny"
    sizes='["small", "mini", "tiny"]',
) + _ONE_MIX_AXIS


def grid_text(quick: bool = False) -> str:
    """The TOML text of the demo grid (``quick`` selects the smoke-test grid)."""
    return QUICK_GRID if quick else FULL_GRID


def load_demo_grid(quick: bool = False) -> Grid:
    """The demo grid, parsed and validated like any grid file."""
    import tomllib

    return parse_grid(tomllib.loads(grid_text(quick)), source="demo grid")


def write_grid(out_dir: Path, quick: bool = False) -> Path:
    """Write the grid's TOML to ``out_dir/grid.toml`` and return the path.

    Raises
    ------
    DataError
        If the file cannot be written.
    """
    path = out_dir / "grid.toml"
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder; remove it or choose another -o DIR")
    atomic_write_text(path, grid_text(quick))
    return path
