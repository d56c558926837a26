"""Chained fits: one fit's prediction is the next fit's input, saved as ``scalelab.chain/1``.

A downstream-accuracy prediction is often a chain: step 1 predicts a task loss from ``(N, D)``,
step 2 maps that loss to accuracy (Bhagia et al. 2024). A *direct* prediction is a chain of one
stage whose input is an expression of ``N`` and ``D`` (``x = 6 * N * D``). :class:`Chain` holds
the stages and predicts through them with an interval that carries every stage's uncertainty:

1. **Parameter draws.** Each stage's bootstrap refits (or, without a bootstrap, draws from the
   normal approximation of its Hessian covariance, :func:`~scalelab.predict.intervals.
   parameter_draws`). Simulation ``i`` uses draw ``i`` of every stage (cycling when a stage has
   fewer draws): the stages were fitted on their own data, so pairing by index pairs
   independent draws.
2. **Observation noise.** Each stage may carry a :class:`~scalelab.predict.intervals.
   NoiseModel`: the scatter of a single run (or checkpoint) around that stage's law, added to
   the stage's prediction in its residual space before it feeds the next stage. So a model's
   own deviation in task loss moves its accuracy, and the accuracy scatters again around the
   step-2 curve.
3. **Interval.** Percentiles of the simulated final values (clipped to ``clip``, e.g. [0, 1]
   for an accuracy). The point prediction ``mean`` is the chain of best-fit laws, no noise.

Each stage maps its law's inputs to expressions over the chain's inputs and the outputs of
earlier stages, in the safe grammar of :mod:`scalelab.store.where` (``{"x": "6 * N * D"}``,
``{"x": "bpb"}``). The JSON file::

    {"schema": "scalelab.chain/1", "method": "two-step" | "direct" | "chain",
     "target": str, "inputs": [str], "chance": float | null, "clip": [lo, hi] | null,
     "stages": [{"inputs": {law input: expression}, "output": str,
                 "noise": NoiseModel.to_dict() | null, "fit": FitResult.to_dict()}],
     "meta": {...}, "provenance": {...}}

``scalelab predict CHAIN.json --at N=13.2e9 D=5e12`` reads it.
"""

from __future__ import annotations

import ast
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from scalelab.errors import DataError, LawError
from scalelab.fit.result import SCHEMA as FIT_SCHEMA
from scalelab.fit.result import FitResult, Prediction
from scalelab.predict.extrapolation import extrapolation_distance
from scalelab.predict.intervals import NoiseModel, parameter_draws
from scalelab.store.where import FUNCTIONS, evaluate

__all__ = ["SCHEMA", "Chain", "Stage", "expression_names", "fit_noise", "read_json"]

SCHEMA = "scalelab.chain/1"

#: simulated values per prediction point (at least the largest number of parameter draws)
N_SIM = 4000

_CONSTANT_NAMES = frozenset({"inf", "nan"})


def expression_names(expression: str) -> list[str]:
    """Names an input expression refers to (functions and ``inf``/``nan`` excluded), in order.

    Raises
    ------
    DataError
        If the expression does not parse or uses back-quoted names.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise DataError(f"a chain input expression must be non-empty text, got {expression!r}")
    if "`" in expression:
        raise DataError(f"chain input {expression!r}: use plain identifiers, not back-quotes")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise DataError(
            f"chain input {expression!r} is not a valid expression; write e.g. '6 * N * D'"
        ) from None
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    nodes = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name)),
                   key=lambda n: (n.lineno, n.col_offset))
    names: list[str] = []
    for node in nodes:
        if node.id in _CONSTANT_NAMES or (node.id in called and node.id in FUNCTIONS):
            continue
        if node.id not in names:
            names.append(node.id)
    return names


@dataclass(frozen=True)
class Stage:
    """One fit in a chain.

    Attributes
    ----------
    fit : FitResult
        The fitted law.
    inputs : mapping of law input -> expression
        How each input of ``fit.law`` is computed from the chain's inputs and the outputs of
        earlier stages, e.g. ``{"N": "N", "D": "D"}``, ``{"x": "6 * N * D"}``, ``{"x": "bpb"}``.
    output : str
        Name under which later stages see this stage's prediction (default: ``fit.y``).
    noise : NoiseModel or None
        Scatter of one observation around this stage's law, added in simulation (``None``: no
        noise for this stage).
    """

    fit: FitResult
    inputs: Mapping[str, str]
    output: str
    noise: NoiseModel | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        law = self.fit.law
        if set(self.inputs) != set(law.inputs):
            raise LawError(
                f"a {law.name} stage needs expressions for its input(s) {list(law.inputs)}; "
                f"got {sorted(self.inputs)}"
            )
        if not self.output.isidentifier():
            raise DataError(
                f"stage output name {self.output!r} must be an identifier (letters, digits, _)"
            )
        for expr in self.inputs.values():
            expression_names(expr)  # validates the syntax

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": dict(self.inputs),
            "output": self.output,
            "noise": None if self.noise is None else self.noise.to_dict(),
            "fit": self.fit.to_dict(),
        }


@dataclass(frozen=True)
class Chain:
    """Fits applied in turn; see the module docstring for the interval.

    Attributes
    ----------
    stages : tuple of Stage
        In evaluation order; each may use the outputs of the stages before it.
    target : str
        Name of the final prediction (``"accuracy"``).
    method : str
        ``"two-step"``, ``"direct"`` or ``"chain"`` (a label for reports).
    chance : float or None
        Chance accuracy of the task, recorded for reports.
    clip : (float, float) or None
        Range the final value is clipped to in simulation (``(0, 1)`` for accuracies).
    meta : mapping
        Free-form provenance: task, data, fitting rule.
    """

    stages: tuple[Stage, ...]
    target: str
    method: str = "chain"
    chance: float | None = None
    clip: tuple[float, float] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))
        if not self.provenance:
            object.__setattr__(self, "provenance", _provenance())
        object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))
        if not self.stages:
            raise DataError("a chain needs at least one stage (a fit)")
        if self.chance is not None and not (math.isfinite(self.chance) and 0 <= self.chance < 1):
            raise DataError(f"chance accuracy must be in [0, 1), got {self.chance!r}")
        if self.clip is not None:
            lo, hi = (float(v) for v in self.clip)
            if not lo < hi:
                raise DataError(f"clip range must have low < high, got {self.clip!r}")
            object.__setattr__(self, "clip", (lo, hi))
        if not self.inputs:
            raise DataError("the first stage's inputs must refer to at least one chain input")

    # ----------------------------------------------------------------- construction
    @classmethod
    def two_step(
        cls,
        step1: FitResult,
        step2: FitResult,
        *,
        chance: float | None = None,
        target: str | None = None,
        noise: bool = True,
        clip: tuple[float, float] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Chain:
        """Chain two fits: step 1's prediction is the single input of step 2.

        Parameters
        ----------
        step1 : FitResult
            E.g. task loss against ``(N, D)``; its inputs become the chain's inputs.
        step2 : FitResult
            A law of one input, e.g. accuracy against task loss.
        chance : float, optional
            Chance accuracy (recorded; with it the final value is clipped to [0, 1]).
        target : str, optional
            Name of the prediction (default ``step2.y``).
        noise : bool
            Add each fit's residual scatter as observation noise (:func:`fit_noise`; default)
            or not.
        """
        if len(step2.law.inputs) != 1:
            raise LawError(
                f"step 2 of a two-step chain must be a law of one input; {step2.law.name} has "
                f"{len(step2.law.inputs)} ({', '.join(step2.law.inputs)})"
            )
        out1 = _identifier(step1.y, "step1")
        out2 = _identifier(step2.y, "step2")
        if out2 == out1:
            out2 = f"{out2}_2"
        s1 = Stage(step1, {k: k for k in step1.law.inputs}, out1,
                   fit_noise(step1) if noise else None)
        s2 = Stage(step2, {step2.law.inputs[0]: out1}, out2,
                   fit_noise(step2) if noise else None)
        if clip is None and chance is not None:
            clip = (0.0, 1.0)
        return cls((s1, s2), target=target or step2.y, method="two-step", chance=chance,
                   clip=clip, meta=dict(meta or {}))

    @classmethod
    def direct(
        cls,
        fit: FitResult,
        *,
        inputs: Mapping[str, str] | None = None,
        chance: float | None = None,
        target: str | None = None,
        noise: bool = True,
        clip: tuple[float, float] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Chain:
        """A chain of one fit whose inputs are expressions of the chain inputs.

        ``inputs`` defaults to the law's own inputs; ``{"x": "6 * N * D"}`` makes a law of
        compute answer ``--at N=... D=...``.
        """
        mapping = dict(inputs) if inputs is not None else {k: k for k in fit.law.inputs}
        stage = Stage(fit, mapping, _identifier(fit.y, "y"), fit_noise(fit) if noise else None)
        if clip is None and chance is not None:
            clip = (0.0, 1.0)
        return cls((stage,), target=target or fit.y, method="direct", chance=chance, clip=clip,
                   meta=dict(meta or {}))

    # ----------------------------------------------------------------- description
    @property
    def inputs(self) -> tuple[str, ...]:
        """Names the caller must give (``("N", "D")``): those the stages use but do not make.

        Raises
        ------
        DataError
            If two stages have the same output, or an output is also used before it is made.
        """
        produced: list[str] = []
        user: list[str] = []
        for k, stage in enumerate(self.stages, start=1):
            for expr in stage.inputs.values():
                for name in expression_names(expr):
                    if name not in produced and name not in user:
                        user.append(name)
            if stage.output in produced:
                raise DataError(f"stage {k} output {stage.output!r} repeats an earlier stage's")
            if stage.output in user:
                raise DataError(
                    f"stage {k} output {stage.output!r} is also used as a chain input; rename it"
                )
            produced.append(stage.output)
        return tuple(user)

    def describe(self) -> str:
        """One line per stage: law, what it maps, and its noise."""
        lines = [f"{self.method} chain -> {self.target}"
                 + (f" (chance {self.chance:g})" if self.chance is not None else "")]
        for k, s in enumerate(self.stages, start=1):
            args = ", ".join(f"{a} = {e}" for a, e in s.inputs.items())
            noise = s.noise.describe() if s.noise is not None else "no noise"
            lines.append(f"  stage {k}: {s.output} = {s.fit.law.name}({args}); {noise}")
        return "\n".join(lines)

    # ----------------------------------------------------------------- prediction
    def _points(self, X: Mapping[str, Any] | None, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        given = {**dict(X or {}), **inputs}
        missing = [k for k in self.inputs if k not in given]
        unknown = [k for k in given if k not in self.inputs]
        if missing or unknown:
            raise DataError(
                f"this chain needs input(s) {', '.join(self.inputs)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else "")
            )
        arrays = {k: np.atleast_1d(np.asarray(given[k], dtype=float)).ravel() for k in self.inputs}
        try:
            arrays = dict(zip(arrays, np.broadcast_arrays(*arrays.values()), strict=True))
        except ValueError:
            raise DataError(
                "chain inputs must have equal lengths (or one value): "
                + ", ".join(f"{k}={len(v)}" for k, v in arrays.items())
            ) from None
        bad = [k for k, v in arrays.items() if not np.all(np.isfinite(v))]
        if bad:
            raise DataError(f"prediction inputs {bad} must be finite numbers")
        return {k: np.ascontiguousarray(v, dtype=float) for k, v in arrays.items()}

    @staticmethod
    def _stage_inputs(stage: Stage, env: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name, expr in stage.inputs.items():
            value = evaluate(expr, env, source="the chain inputs")
            n = len(next(iter(env.values())))
            arr = np.broadcast_to(np.asarray(value, dtype=float), (n,))
            out[name] = np.ascontiguousarray(arr)
        return out

    def stage_values(self, X: Mapping[str, Any] | None = None, /, **inputs: Any) -> dict[str, np.ndarray]:
        """Best-fit value of every stage output (and every stage input) at the points.

        Returns a mapping of name -> array, e.g. ``{"N", "D", "bpb", "accuracy"}``: useful for
        checking step 1 (the predicted task loss) separately from step 2.
        """
        env: dict[str, np.ndarray] = self._points(X, inputs)
        for stage in self.stages:
            pts = self._stage_inputs(stage, env)
            env[stage.output] = stage.fit.law.evaluate(stage.fit.theta, pts)
        return env

    def predict(
        self,
        X: Mapping[str, Any] | None = None,
        /,
        *,
        coverage: float = 0.95,
        noise: bool = True,
        n_sim: int = N_SIM,
        seed: int = 0,
        **inputs: Any,
    ) -> Prediction:
        """Predict through every stage, with an interval from all stages' uncertainty.

        Parameters
        ----------
        X : mapping of input -> values, optional
            The chain's inputs (or pass them as keywords: ``N=13.2e9, D=5e12``).
        coverage : float
            Interval coverage.
        noise : bool
            Add each stage's observation noise (an interval for one new model); ``False`` gives
            the interval of the fitted curves only.
        n_sim : int
            Simulated values per point (raised to the largest number of parameter draws).
        seed : int
            Seed of the noise draws (and of Hessian parameter draws).

        Returns
        -------
        Prediction
            ``mean`` from the best fits; ``lower``/``upper`` percentiles of the simulations.

        Examples
        --------
        >>> chain = Chain.load("chain.json")  # doctest: +SKIP
        >>> chain.predict(N=13.2e9, D=5e12).mean  # doctest: +SKIP
        """
        if not 0 < coverage < 1:
            raise DataError(f"coverage must be between 0 and 1, got {coverage}")
        points = self._points(X, inputs)
        n = len(next(iter(points.values())))
        mean = self.stage_values(points)[self.stages[-1].output]
        draws = []
        labels = []
        for k, stage in enumerate(self.stages):
            theta, label = parameter_draws(stage.fit, n=1000, seed=seed + k)
            draws.append(theta)
            labels.append(label)
        sims = max(int(n_sim), *(len(d) for d in draws))
        rng = np.random.default_rng(seed)
        alpha = (1.0 - coverage) / 2.0
        lower, upper = np.empty(n), np.empty(n)
        for i in range(n):
            env = {k: np.full(sims, v[i]) for k, v in points.items()}
            for stage, theta in zip(self.stages, draws, strict=True):
                env[stage.output] = self._simulate(stage, theta, env, sims, noise, rng)
            final = env[self.stages[-1].output]
            if self.clip is not None:
                final = np.clip(final, *self.clip)
            lower[i], upper[i] = np.nanquantile(final, [alpha, 1.0 - alpha])
        kinds = "+".join(sorted(set(labels)))
        method = f"chained {kinds} draws" + ("+noise" if noise else "")
        return Prediction(mean, lower, upper, float(coverage), method)

    def _simulate(
        self,
        stage: Stage,
        theta: np.ndarray,
        env: Mapping[str, np.ndarray],
        sims: int,
        noise: bool,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """One value per simulation: draw ``i`` of the stage's parameters at input ``i``."""
        law = stage.fit.law
        pts = self._stage_inputs(stage, env)
        which = np.arange(sims) % len(theta)
        paired = {k: v[:, None] for k, v in pts.items()}  # (sims, 1): row i with draw i
        model = stage.noise if noise else None
        with np.errstate(all="ignore"):
            if model is not None and model.space == "log":
                out = law.log_evaluate(theta[which], paired)[:, 0]
            else:
                out = law.evaluate(theta[which], paired)[:, 0]
        if model is not None:
            ranges = {k: tuple(v) for k, v in stage.fit.data.get("ranges", {}).items()}
            dist = extrapolation_distance(ranges, pts, names=[k for k in pts if k in ranges])
            out = out + model.sd(dist) * rng.standard_normal(sims)
            if model.space == "log":
                out = np.exp(out)
        return out

    def extrapolation_notes(self, X: Mapping[str, Any] | None = None, /, **inputs: Any) -> list[str]:
        """Where the best-fit chain leaves each stage's fitted range, one note per input."""
        env = self.stage_values(X, **inputs)
        notes = []
        for k, stage in enumerate(self.stages, start=1):
            ranges = stage.fit.data.get("ranges", {})
            pts = self._stage_inputs(stage, env)
            for name, values in pts.items():
                rng = ranges.get(name)
                if not rng:
                    continue
                lo, hi = float(rng[0]), float(rng[1])
                label = name if stage.inputs[name] == name else f"{name} = {stage.inputs[name]}"
                if hi > 0 and np.max(values) > hi:
                    notes.append(f"stage {k} {label} up to {np.max(values) / hi:.3g}x the largest fitted value")
                if lo > 0 and np.min(values) < lo:
                    notes.append(f"stage {k} {label} down to {np.min(values) / lo:.3g}x the smallest fitted value")
        return notes

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "method": self.method,
            "target": self.target,
            "inputs": list(self.inputs),
            "chance": self.chance,
            "clip": None if self.clip is None else list(self.clip),
            "stages": [s.to_dict() for s in self.stages],
            "meta": _jsonable(dict(self.meta)),
            "provenance": _jsonable(dict(self.provenance)),
        }

    def save(self, path: str | Path) -> None:
        """Write the chain as one JSON file (no NaN: missing values are null)."""
        from scalelab._io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Chain:
        """Rebuild a chain from :meth:`to_dict` output, checking the schema version."""
        schema = d.get("schema") if isinstance(d, Mapping) else None
        if schema != SCHEMA:
            if schema == FIT_SCHEMA:
                raise DataError(
                    f"this is a single fit (schema {FIT_SCHEMA!r}), not a chain; predict from it "
                    "with `scalelab predict FIT.json` or chain it with --then STEP2.json"
                )
            if isinstance(schema, str) and schema.startswith("scalelab.chain/"):
                raise DataError(
                    f"chain schema {schema!r} is not readable by this scalelab (it reads "
                    f"{SCHEMA!r}); re-create the chain with this version"
                )
            raise DataError(f"not a scalelab chain (schema {schema!r}, expected {SCHEMA!r})")
        try:
            stages = []
            for s in d["stages"]:
                noise = s.get("noise")
                stages.append(Stage(
                    fit=FitResult.from_dict(s["fit"]),
                    inputs=dict(s["inputs"]),
                    output=str(s["output"]),
                    noise=None if noise is None else NoiseModel.from_dict(noise),
                ))
            clip = d.get("clip")
            chance = d.get("chance")
            chain = cls(
                stages=tuple(stages),
                target=str(d["target"]),
                method=str(d.get("method", "chain")),
                chance=None if chance is None else float(chance),
                clip=None if clip is None else (float(clip[0]), float(clip[1])),
                meta=dict(d.get("meta") or {}),
                provenance=dict(d.get("provenance") or {}),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            if isinstance(exc, (DataError, LawError)):
                raise
            raise DataError(f"malformed chain JSON: {type(exc).__name__}: {exc}") from None
        recorded = d.get("inputs")
        if recorded is not None and list(recorded) != list(chain.inputs):
            raise DataError(
                f"malformed chain JSON: it lists inputs {list(recorded)} but its stages use "
                f"{list(chain.inputs)}"
            )
        return chain

    @classmethod
    def load(cls, path: str | Path) -> Chain:
        """Read a chain written by :meth:`save`."""
        return cls.from_dict(read_json(path, "chain"))


def read_json(path: str | Path, what: str = "fit") -> dict[str, Any]:
    """Read a scalelab JSON file (a fit or a chain) with one-line errors for bad files."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise DataError(
            f"{what} file {str(p)!r} not found; write a fit with `scalelab fit ... --json FILE` "
            "or a chain with Chain.save"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {what} file {str(p)!r}: {exc}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{str(p)!r} is not valid JSON (line {exc.lineno}): is it a scalelab {what} file?"
        ) from None
    if not isinstance(d, dict):
        raise DataError(f"{str(p)!r} is not a scalelab {what} file (no JSON object)")
    return d


def fit_noise(result: FitResult) -> NoiseModel:
    """Observation noise of a fit: its RMS residual with a degrees-of-freedom correction.

    ``sd = rmse * sqrt(n / (n - k))`` for ``n`` points and ``k`` free parameters, the usual
    unbiased variance estimate (the in-sample RMS alone is too small when few points
    determine many parameters, e.g. 16 ladder runs for a 5-parameter law), in the fit's
    residual space.

    Raises
    ------
    DataError
        If the fit records no residual RMS.
    """
    rmse = result.stats.get("rmse_residual_space")
    if rmse is None or not math.isfinite(float(rmse)):
        raise DataError("the fit records no residual RMS; refit it with this version of scalelab")
    n, k = int(result.n_points), int(result.n_free)
    scale = float(rmse) * math.sqrt(n / (n - k)) if n > k else float(rmse)
    return NoiseModel(str(result.options.get("space", "log")), scale, 0.0, "fit-rmse-df", n)


def _identifier(name: str, fallback: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in str(name))
    if not cleaned or not cleaned.isidentifier():
        cleaned = fallback
    return cleaned


def _provenance() -> dict[str, Any]:
    import platform

    from scalelab._version import __version__

    return {
        "scalelab": __version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x

