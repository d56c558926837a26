"""The typed configuration of one training run, loaded from a dict or TOML and checked strictly.

A run config has five tables and a few top-level fields::

    steps = 400                   # optimiser updates
    init_seed = 0                 # model initialisation (and dropout)
    data_seed = 0                 # batch order: batch k is a pure function of (data_seed, k)
    device = "auto"               # auto | cpu | cuda
    precision = "auto"            # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    compile = false               # torch.compile the model (meant for CUDA)
    checkpoint_every = 100        # steps between checkpoints (0: only at the end)

    [model]                       # a named rung of SIZE_LADDER, or n_layer, n_head, d_model
    size = "tiny"                 # (kind = "mlp": a causal MLP of n_layer, d_model instead)

    [optim]                       # AdamW, linear warmup then cosine decay to lr * min_lr_ratio
    lr = 1e-3

    [data]
    seq_len = 32
    batch_size = 64
    [data.sources.modadd]         # source name -> kind and options
    kind = "modular"
    options = { p = 97, train_fraction = 0.5 }
    [data.schedule]               # mixture weights, one source, or curriculum phases
    mixture = { modadd = 1.0 }    # (omitted: every source, uniformly)

    [eval]
    count = 16                    # log-spaced eval steps 0, 1, 2, 4, ..., steps

    [tracking.wandb]              # optional: log the run live to Weights & Biases
    project = "scalelab"          # (see docs/wandb.md; not part of the run's identity)
    mode = "auto"                 # auto (online with a key and network) | online | offline

Every problem (an unknown key, with its dotted path and a did-you-mean; a wrong type; an
impossible size; an unknown source kind or option; an empty or non-positive mixture; a
curriculum phase with no data) raises a :class:`~scalelab.errors.DataError` from
:meth:`RunConfig.from_dict` before anything runs. Option *values* are checked when the
trainer builds the sources, still before it writes anything. This module imports only the
standard library at import time (validation loads the numpy-only source registry).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.errors import DataError

__all__ = [
    "MODEL_KINDS",
    "SIZE_LADDER",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "ModelSize",
    "OptimConfig",
    "PhaseConfig",
    "RunConfig",
    "ScheduleConfig",
    "SourceConfig",
    "TrackingConfig",
    "WandbConfig",
    "load_config",
    "mlp_params",
    "non_embedding_params",
]


@dataclass(frozen=True)
class ModelSize:
    """A named rung of the size ladder: depth, heads and width (head size ``d_model // n_head``)."""

    n_layer: int
    n_head: int
    d_model: int


# Non-embedding parameters (12 d^2 + 13 d per block + 2 d for the final LayerNorm) in comments.
SIZE_LADDER: dict[str, ModelSize] = {
    "tiny": ModelSize(n_layer=3, n_head=3, d_model=24),  # 21,720
    "mini": ModelSize(n_layer=3, n_head=3, d_model=48),  # 84,912
    "small": ModelSize(n_layer=4, n_head=4, d_model=64),  # 200,064
    "medium": ModelSize(n_layer=4, n_head=6, d_model=96),  # 447,552
    "large": ModelSize(n_layer=6, n_head=8, d_model=128),  # 1,189,888
    "xl": ModelSize(n_layer=6, n_head=12, d_model=192),  # 2,669,568
    "xxl": ModelSize(n_layer=6, n_head=16, d_model=256),  # 4,739,072
}


def non_embedding_params(n_layer: int, d_model: int) -> int:
    """Non-embedding parameters of the harness's GPT with this depth and width, by formula.

    ``n_layer (12 d^2 + 13 d) + 2 d`` (Kaplan et al.'s count, as the trainer logs it); here, not
    in :mod:`scalelab.harness.model`, so it can be computed without importing torch.
    """
    return n_layer * (12 * d_model**2 + 13 * d_model) + 2 * d_model


def mlp_params(n_layer: int, d_model: int, *, vocab_size: int, block_size: int) -> tuple[int, int]:
    """Total and non-embedding parameters of the harness's causal MLP (``model.kind = "mlp"``).

    Non-embedding: the ``n_layer - 1`` hidden layers and the output layer,
    ``(n_layer - 1)(d^2 + d) + d V + V``. The total adds the input layer's lookup tables,
    ``T V d`` (one ``(V, d)`` table per position) and ``T d`` (its position-specific bias), which
    cost no multiply-adds per token, like the GPT's embeddings (see
    :mod:`scalelab.harness.mlp`). Here, not there, so it can be computed without importing torch.

    Examples
    --------
    >>> mlp_params(1, 64, vocab_size=259, block_size=20)
    (349635, 16835)
    """
    d, V, T = d_model, vocab_size, block_size
    non_embedding = (n_layer - 1) * (d * d + d) + d * V + V
    return non_embedding + T * V * d + T * d, non_embedding


# ----------------------------------------------------------------------------- the dataclasses
#: Model families (``model.kind``): the GPT (:mod:`scalelab.harness.model`, the default) and the
#: causal MLP of the one-hot prefix (:mod:`scalelab.harness.mlp`).
MODEL_KINDS = ("gpt", "mlp")


@dataclass(frozen=True)
class ModelConfig:
    """The model: a ``size`` from :data:`SIZE_LADDER`, or explicit ``n_layer``/``n_head``/``d_model``.

    ``kind`` ``"gpt"`` (default) is the transformer; ``kind = "mlp"`` is the causal MLP of
    :mod:`scalelab.harness.mlp`, shaped by ``n_layer`` (ReLU layers) and ``d_model`` (width) alone
    (no size ladder, no heads: ``size`` and ``n_head`` are None). ``block_size`` (learned
    positions) defaults to the data's ``seq_len``. The default kind is left out of
    :meth:`RunConfig.to_dict`, so configs written before ``kind`` existed are unchanged.
    """

    size: str | None = "tiny"
    n_layer: int | None = None
    n_head: int | None = None
    d_model: int | None = None
    block_size: int | None = None
    dropout: float = 0.0
    kind: str = "gpt"

    def dims(self) -> ModelSize:
        """Depth, heads and width, from the ladder or the explicit fields (0 heads for the MLP)."""
        if self.kind == "mlp":
            if not (self.n_layer and self.d_model):
                raise DataError("model: kind 'mlp' needs n_layer and d_model")
            return ModelSize(self.n_layer, 0, self.d_model)
        if self.size is not None:
            return SIZE_LADDER[self.size]
        if not (self.n_layer and self.n_head and self.d_model):
            raise DataError("model: give a size or all of n_layer, n_head, d_model")
        return ModelSize(self.n_layer, self.n_head, self.d_model)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with decoupled weight decay on matrices, linear warmup, cosine decay, clipping.

    The learning rate rises linearly over ``warmup_steps`` to ``lr``, then follows a cosine to
    ``lr * min_lr_ratio`` at the last step. ``grad_clip`` is a global-norm bound (0: off).
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.1
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass(frozen=True)
class SourceConfig:
    """One data source: its ``kind`` (a task or text domain) and the options that build it."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PhaseConfig:
    """One curriculum phase: source ``weights`` for ``steps`` steps or a ``fraction`` of the run.

    Only the last phase may give neither; it then runs to the end.
    """

    weights: Mapping[str, float]
    steps: int | None = None
    fraction: float | None = None


@dataclass(frozen=True)
class ScheduleConfig:
    """Which source each row comes from: one ``mixture`` for the whole run, or a ``curriculum``.

    In TOML, ``source = "name"`` is short for ``mixture = { name = 1 }``; a missing schedule
    mixes every source uniformly. :meth:`config` gives the form
    :func:`scalelab.harness.mixture.schedule_from_config` reads.
    """

    mixture: Mapping[str, float] | None = None
    curriculum: tuple[PhaseConfig, ...] | None = None

    def config(self) -> dict[str, Any]:
        """``{"mixture": weights}`` or ``{"curriculum": [{"weights", "steps"|"fraction"}, ...]}``."""
        if self.curriculum is not None:
            return {"curriculum": [_plain(dataclasses.asdict(p)) for p in self.curriculum]}
        return {"mixture": dict(self.mixture or {})}


@dataclass(frozen=True)
class DataConfig:
    """Sources by name, the schedule over them, and the batch shape (rows x tokens)."""

    sources: Mapping[str, SourceConfig]
    schedule: ScheduleConfig
    seq_len: int
    batch_size: int


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation at ``count`` log-spaced steps (0, 1, 2, 4, ..., steps) on every eval set.

    Each eval set is cut to ``max_examples`` rows spread evenly over it (not its first rows: sources
    store held-out examples in key order) and run ``batch_size`` rows at a time.
    """

    count: int = 16
    batch_size: int = 256
    max_examples: int = 512


@dataclass(frozen=True)
class WandbConfig:
    """Live logging of the run to Weights & Biases (:mod:`scalelab.tracking.live`).

    ``mode`` ``auto`` logs online when an API key and the server are available and offline
    (a local run folder, uploaded later with ``wandb sync``) otherwise. ``init_timeout`` and
    ``finish_timeout`` (seconds) bound how long W&B may hold up the start and the end of
    training; an unreachable server never stops training.
    """

    project: str
    entity: str | None = None
    mode: str = "auto"
    group: str | None = None
    tags: tuple[str, ...] = ()
    init_timeout: float = 30.0
    finish_timeout: float = 60.0


@dataclass(frozen=True)
class TrackingConfig:
    """Where the run is tracked besides the store (the store stays the source of truth)."""

    wandb: WandbConfig | None = None


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run. Build it with :meth:`from_dict` or :func:`load_config`."""

    model: ModelConfig
    optim: OptimConfig
    data: DataConfig
    eval: EvalConfig
    steps: int
    init_seed: int = 0
    data_seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    checkpoint_every: int = 500
    grid: Mapping[str, Any] | None = None  # set by scalelab.harness.grid: {"name", "labels"}
    tracking: TrackingConfig | None = None  # where else the run is logged (not its identity)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """Build and validate a config from plain data (parsed TOML or JSON).

        Raises
        ------
        DataError
            Naming the dotted path of the first bad field and how to fix it.
        """
        return _parse_run(d)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data with every default filled in; ``from_dict`` rebuilds an equal config.

        The one exception is ``model.kind``, written only when it is not the default ``"gpt"``, so
        the stored configs (and the identity checks on resume) of GPT runs are what they were
        before the MLP existed.
        """
        d: dict[str, Any] = _plain(dataclasses.asdict(self))
        if d["model"].get("kind") == "gpt":
            del d["model"]["kind"]
        return d

    def with_device(self, device: str) -> RunConfig:
        """A copy that runs on ``device`` (auto, cpu or cuda)."""
        if device not in _DEVICES:
            raise DataError(f"unknown device {device!r}; choose one of {', '.join(_DEVICES)}")
        return dataclasses.replace(self, device=device)

    @property
    def block_size(self) -> int:
        """Learned positions of the model (``model.block_size``, else ``data.seq_len``)."""
        return self.model.block_size or self.data.seq_len


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from a ``.toml`` (or ``.json``) file and validate it."""
    from scalelab._io import read_toml_or_json

    return RunConfig.from_dict(read_toml_or_json(path, "config"))


# ----------------------------------------------------------------------------- parsing
_DEVICES = ("auto", "cpu", "cuda")
_WANDB_MODES = ("auto", "online", "offline", "disabled")
_PRECISIONS = ("auto", "fp32", "bf16")
_MISSING = object()


def _plain(x: Any) -> Any:
    """JSON-able copy: tuples become lists, and ``None`` entries of tables are dropped."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items() if v is not None}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _fail(path: str, problem: str) -> DataError:
    return DataError(f"config: {path} {problem}")


def _table(d: Any, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    """Check ``d`` is a table whose keys are all in ``allowed`` (with a did-you-mean otherwise)."""
    if not isinstance(d, Mapping):
        raise _fail(path or "the config", f"must be a table, got {type(d).__name__}")
    for key in d:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            hint = f"did you mean {_suggest(str(key), allowed)!r}? " if _suggest(str(key), allowed) else ""
            raise DataError(f"config: unknown key {where!r}; {hint}known keys here: {', '.join(allowed)}")
    return d


# Names other trainers use for our keys (nanoGPT, HF), so a did-you-mean can point across.
_ALIASES = {
    "learning_rate": "lr", "max_lr": "lr", "wd": "weight_decay", "warmup": "warmup_steps",
    "warmup_iters": "warmup_steps", "grad_norm_clip": "grad_clip", "clip_grad": "grad_clip",
    "max_grad_norm": "grad_clip", "max_steps": "steps", "max_iters": "steps", "n_embd": "d_model",
    "hidden_size": "d_model", "num_layers": "n_layer", "n_layers": "n_layer", "n_heads": "n_head",
    "num_heads": "n_head", "seed": "init_seed", "batch": "batch_size", "context_length": "seq_len",
    "weights": "mixture", "curriculum": "phases", "eval_batch_size": "batch_size",
}


def _suggest(key: str, allowed: tuple[str, ...]) -> str | None:
    """The allowed key closest to ``key`` (directly or through a known alias), if any is close."""
    candidates = {a: a for a in allowed}
    candidates.update({alias: target for alias, target in _ALIASES.items() if target in allowed})
    close = difflib.get_close_matches(key.lower(), list(candidates), n=1, cutoff=0.6)
    return candidates[close[0]] if close else None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _int(d: Mapping[str, Any], key: str, path: str, default: Any = _MISSING, *, low: int | None = None) -> Any:
    where = _join(path, key)
    if key not in d and default is _MISSING:
        raise DataError(f"config: missing required key {where!r}")
    value = d.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"must be an integer, got {value!r} ({type(value).__name__})")
    if low is not None and value < low:
        word = "positive" if low == 1 else f"at least {low}"
        raise _fail(where, f"must be {word}, got {value}")
    return value


def _float(d: Mapping[str, Any], key: str, path: str, default: Any = _MISSING, *,
           low: float | None = None, high: float | None = None, open_low: bool = False,
           open_high: bool = False) -> Any:
    where = _join(path, key)
    if key not in d and default is _MISSING:
        raise DataError(f"config: missing required key {where!r}")
    value = d.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, f"must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise _fail(where, f"must be finite, got {value}")
    if low is not None and (value < low or (open_low and value == low)):
        raise _fail(where, f"must be {'>' if open_low else '>='} {low:g}, got {value:g}")
    if high is not None and (value > high or (open_high and value == high)):
        raise _fail(where, f"must be {'<' if open_high else '<='} {high:g}, got {value:g}")
    return value


def _choice(d: Mapping[str, Any], key: str, path: str, choices: tuple[str, ...], default: str) -> str:
    value = d.get(key, default)
    if value not in choices:
        raise _fail(_join(path, key), f"must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _bool(d: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise _fail(_join(path, key), f"must be true or false, got {value!r}")
    return value


def _parse_model(d: Any) -> ModelConfig:
    path = "model"
    d = _table(d, path, ("kind", "size", "n_layer", "n_head", "d_model", "block_size", "dropout"))
    kind = _choice(d, "kind", path, MODEL_KINDS, "gpt")
    block_size = _int(d, "block_size", path, None, low=1)
    dropout = _float(d, "dropout", path, 0.0, low=0.0, high=1.0, open_high=True)
    if kind == "mlp":
        for key in ("size", "n_head"):
            if key in d:
                raise _fail(f"model.{key}", "does not apply to kind 'mlp' (no size ladder, no attention heads); "
                            "remove it and give n_layer and d_model")
        missing = [k for k in ("n_layer", "d_model") if k not in d]
        if missing:
            raise _fail(path, f"is missing {', '.join(missing)}; kind 'mlp' needs n_layer (ReLU layers) and "
                        "d_model (width)")
        return ModelConfig(size=None, n_layer=_int(d, "n_layer", path, low=1), n_head=None,
                           d_model=_int(d, "d_model", path, low=1), block_size=block_size, dropout=dropout,
                           kind="mlp")
    explicit = [k for k in ("n_layer", "n_head", "d_model") if k in d]
    size = d.get("size", None if explicit else "tiny")
    if size is not None:
        if explicit:
            raise _fail(path, f"gives both size {size!r} and {', '.join(explicit)}; give a size or all of n_layer, n_head, d_model")
        if not isinstance(size, str) or size not in SIZE_LADDER:
            raise _fail("model.size", f"must be one of {', '.join(SIZE_LADDER)}, got {size!r}")
        n_layer = n_head = d_model = None
    else:
        if len(explicit) < 3:
            missing = sorted({"n_layer", "n_head", "d_model"} - set(explicit))
            raise _fail(path, f"is missing {', '.join(missing)}; give a size or all of n_layer, n_head, d_model")
        n_layer = _int(d, "n_layer", path, low=1)
        n_head = _int(d, "n_head", path, low=1)
        d_model = _int(d, "d_model", path, low=1)
        if d_model % n_head:
            raise _fail("model.d_model", f"{d_model} is not divisible by model.n_head {n_head}; choose a width that is a multiple of the head count")
    return ModelConfig(
        size=size,
        n_layer=n_layer,
        n_head=n_head,
        d_model=d_model,
        block_size=block_size,
        dropout=dropout,
    )


def _parse_optim(d: Any, steps: int) -> OptimConfig:
    path = "optim"
    d = _table(d, path, ("lr", "betas", "eps", "weight_decay", "warmup_steps", "min_lr_ratio", "grad_clip"))
    betas = d.get("betas", [0.9, 0.95])
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise _fail("optim.betas", f"must be a list of two numbers in [0, 1), got {betas!r}")
    b = tuple(_float({"betas": v}, "betas", path, low=0.0, high=1.0, open_high=True) for v in betas)
    warmup = _int(d, "warmup_steps", path, 0, low=0)
    if warmup > steps:
        raise _fail("optim.warmup_steps", f"({warmup}) exceeds steps ({steps}); shorten the warmup or train longer")
    return OptimConfig(
        lr=_float(d, "lr", path, 1e-3, low=0.0, open_low=True),
        betas=(b[0], b[1]),
        eps=_float(d, "eps", path, 1e-8, low=0.0, open_low=True),
        weight_decay=_float(d, "weight_decay", path, 0.1, low=0.0),
        warmup_steps=warmup,
        min_lr_ratio=_float(d, "min_lr_ratio", path, 0.1, low=0.0, high=1.0),
        grad_clip=_float(d, "grad_clip", path, 1.0, low=0.0),
    )


def _parse_weights(w: Any, path: str, sources: Mapping[str, SourceConfig]) -> dict[str, float]:
    if not isinstance(w, Mapping):
        raise _fail(path, f"must be a table of source name -> weight, got {w!r}")
    if not w:
        raise _fail(path, f"is empty; give a weight to at least one of the sources ({', '.join(sources)})")
    out: dict[str, float] = {}
    for name in w:
        if name not in sources:
            close = difflib.get_close_matches(str(name), list(sources), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(f"config: {path} names source {name!r}, which is not in data.sources; {hint}sources: {', '.join(sources)}")
        out[str(name)] = _float(w, name, path, low=0.0)
    if sum(out.values()) <= 0:
        raise _fail(path, "has weights that sum to 0; give at least one source a positive weight")
    return out


def _parse_schedule(d: Any, sources: Mapping[str, SourceConfig], steps: int) -> ScheduleConfig:
    path = "data.schedule"
    if d is None:
        return ScheduleConfig(mixture={name: 1.0 for name in sources})
    d = _table(d, path, ("mixture", "source", "curriculum"))
    if len(d) != 1:
        raise _fail(path, "needs exactly one of 'mixture' (weights), 'source' (one name) or 'curriculum' (phases)")
    if "source" in d:
        return ScheduleConfig(mixture=_parse_weights({d["source"]: 1.0}, f"{path}.source", sources))
    if "mixture" in d:
        return ScheduleConfig(mixture=_parse_weights(d["mixture"], f"{path}.mixture", sources))
    raw = d["curriculum"]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise _fail(f"{path}.curriculum", "must be a non-empty list of phases ({weights, steps or fraction})")
    phases = []
    for i, ph in enumerate(raw):
        where = f"{path}.curriculum[{i}]"
        ph = _table(ph, where, ("weights", "steps", "fraction"))
        if "weights" not in ph:
            raise _fail(where, "has no weights; give the phase its source weights")
        n = _int(ph, "steps", where, None, low=1)
        frac = _float(ph, "fraction", where, None, low=0.0, high=1.0, open_low=True)
        phases.append(PhaseConfig(_parse_weights(ph["weights"], f"{where}.weights", sources), n, frac))
    # numpy only; the mixture module owns the rule for phase lengths
    from scalelab.harness.mixture import Curriculum, Phase

    try:
        Curriculum([Phase(dict(p.weights), p.steps, p.fraction) for p in phases]).check(steps)
    except DataError as exc:
        raise DataError(f"config: {path}.curriculum: {exc}") from None
    return ScheduleConfig(curriculum=tuple(phases))


def _check_source(where: str, kind: str, options: Mapping[str, Any]) -> None:
    """Check the kind and option names against the source registry (values are checked when built)."""
    import inspect

    from scalelab.harness.sources import available_sources, source_options

    kinds = tuple(available_sources())
    if kind not in kinds:
        close = difflib.get_close_matches(kind, kinds, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(f"config: {where}.kind {kind!r} is not a source kind; {hint}kinds: {', '.join(kinds)}")
    if "name" in options:
        raise _fail(f"{where}.options.name", "is not needed: a source is named by its key in data.sources; remove it")
    allowed = tuple(k for k in source_options(kind) if k != "name")
    _table(options, f"{where}.options", allowed)
    missing = [k for k, v in source_options(kind).items() if v is inspect.Parameter.empty and k not in options]
    if missing:
        raise _fail(f"{where}.options", f"is missing {', '.join(missing)} (required by source kind {kind!r})")


def _parse_data(d: Any, steps: int) -> DataConfig:
    path = "data"
    d = _table(d, path, ("sources", "schedule", "seq_len", "batch_size"))
    raw = d.get("sources")
    if not isinstance(raw, Mapping) or not raw:
        raise _fail("data.sources", "must be a non-empty table of name -> {kind, options}")
    sources: dict[str, SourceConfig] = {}
    for name, spec in raw.items():
        where = f"data.sources.{name}"
        spec = _table(spec, where, ("kind", "options"))
        kind = spec.get("kind")
        if not isinstance(kind, str) or not kind:
            raise _fail(f"{where}.kind", f"must name the source kind, got {kind!r}")
        options = spec.get("options", {})
        if not isinstance(options, Mapping):
            raise _fail(f"{where}.options", f"must be a table, got {options!r}")
        _check_source(where, kind, options)
        sources[str(name)] = SourceConfig(kind, _plain(options))
    return DataConfig(
        sources=sources,
        schedule=_parse_schedule(d.get("schedule"), sources, steps),
        seq_len=_int(d, "seq_len", path, low=2),
        batch_size=_int(d, "batch_size", path, low=1),
    )


def _parse_eval(d: Any) -> EvalConfig:
    path = "eval"
    d = _table(d, path, ("count", "batch_size", "max_examples"))
    return EvalConfig(
        count=_int(d, "count", path, 16, low=2),
        batch_size=_int(d, "batch_size", path, 256, low=1),
        max_examples=_int(d, "max_examples", path, 512, low=1),
    )


def _text(d: Mapping[str, Any], key: str, path: str, default: Any = _MISSING) -> Any:
    where = _join(path, key)
    if key not in d and default is _MISSING:
        raise DataError(f"config: missing required key {where!r}")
    value = d.get(key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"must be non-empty text, got {value!r}")
    return value


def _parse_tracking(d: Any) -> TrackingConfig:
    d = _table(d, "tracking", ("wandb",))
    if "wandb" not in d:
        return TrackingConfig()
    path = "tracking.wandb"
    w = _table(d["wandb"], path, ("project", "entity", "mode", "group", "tags", "init_timeout", "finish_timeout"))
    tags = w.get("tags", [])
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) and t for t in tags):
        raise _fail(f"{path}.tags", f"must be a list of non-empty text, got {tags!r}")
    return TrackingConfig(wandb=WandbConfig(
        project=_text(w, "project", path),
        entity=_text(w, "entity", path, None),
        mode=_choice(w, "mode", path, _WANDB_MODES, "auto"),
        group=_text(w, "group", path, None),
        tags=tuple(tags),
        init_timeout=_float(w, "init_timeout", path, 30.0, low=0.0, open_low=True),
        finish_timeout=_float(w, "finish_timeout", path, 60.0, low=0.0, open_low=True),
    ))


_TOP = ("model", "optim", "data", "eval", "steps", "init_seed", "data_seed", "device", "precision",
        "compile", "checkpoint_every", "grid", "tracking")


def _parse_run(d: Any) -> RunConfig:
    d = _table(d, "", _TOP)
    steps = _int(d, "steps", "", low=1)
    if "data" not in d:
        raise DataError("config: missing required table 'data' (sources, schedule, seq_len, batch_size)")
    model = _parse_model(d.get("model", {}))
    data = _parse_data(d["data"], steps)
    block = model.block_size or data.seq_len
    if data.seq_len > block:
        raise _fail("data.seq_len", f"({data.seq_len}) exceeds model.block_size ({block}); raise block_size or shorten seq_len")
    grid = d.get("grid")
    if grid is not None and not isinstance(grid, Mapping):
        raise _fail("grid", f"must be a table, got {grid!r}")
    return RunConfig(
        model=model,
        optim=_parse_optim(d.get("optim", {}), steps),
        data=data,
        eval=_parse_eval(d.get("eval", {})),
        steps=steps,
        init_seed=_int(d, "init_seed", "", 0, low=0),
        data_seed=_int(d, "data_seed", "", 0, low=0),
        device=_choice(d, "device", "", _DEVICES, "auto"),
        precision=_choice(d, "precision", "", _PRECISIONS, "auto"),
        compile=_bool(d, "compile", "", False),
        checkpoint_every=_int(d, "checkpoint_every", "", 500, low=0),
        grid=_plain(grid) if grid is not None else None,
        tracking=_parse_tracking(d["tracking"]) if "tracking" in d else None,
    )
