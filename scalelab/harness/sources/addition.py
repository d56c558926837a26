"""Multi-digit addition in four formats of the same content: the data-format testbed.

Lee, Sreenivasan, Lee, Lee & Papailiopoulos (2023), "Teaching Arithmetic to Small
Transformers", arXiv:2307.03381 (ICLR 2024). The same pairs ``(a, b)``, ``0 <= a, b < 10**digits``,
are rendered in one of the paper's formats (Sec. 4-5; the scratchpads follow its Fig. 4 and the
authors' generator); BOS and EOS delimit every example::

    plain                BOS "128+367=" "495" EOS
    reverse              BOS "128+367=" "594" EOS          (sum written least-significant first)
    simple_scratchpad    BOS "Input:\\n128+367\\nTarget:\\n"
                             "A->5 , C->1\\nA->9 , C->0\\nA->4 , C->0.\\n495" EOS
    detailed_scratchpad  BOS "Input:\\n128+367\\nTarget:\\n"
                             "<scratch>\\n[1,2,8] has 3 digits.\\n[3,6,7] has 3 digits.\\n"
                             "[1,2,8] + [3,6,7] , A=[] , C=0 , 8+7+0=15 , A->5 , C->1\\n"
                             "[1,2] + [3,6] , A=[5] , C=1 , 2+6+1=9 , A->9 , C->0\\n"
                             "[1] + [3] , A=[9,5] , C=0 , 1+3+0=4 , A->4 , C->0\\n"
                             "[] + [] , A=[4,9,5] C=0 , END\\n</scratch>\\n4 9 5" EOS

As in the paper, the loss covers everything generated after the prompt (scratchpad, result and
EOS), and accuracy is the exact match of the final result: ``answer_mask`` covers only the
result (``"495"``, ``"594"``, ``"4 9 5"``) and EOS. Evaluation uses exactly the training framing.

The held-out pairs (``eval_size`` of them, fixed by the seed) never appear in training; with
``train_size`` the training data is a fixed pool of that many distinct pairs (the paper's
sample-size axis), otherwise every training row is a fresh pair.
"""

from __future__ import annotations

import numpy as np

from scalelab.errors import DataError
from scalelab.harness.sources.base import (
    BaseSource,
    Batch,
    ExampleTable,
    check_count,
    opt_choice,
    opt_int,
    opt_name,
    opt_seed,
    rng_for,
)

__all__ = ["FORMATS", "AdditionSource", "render_addition"]

FORMATS = ("plain", "reverse", "simple_scratchpad", "detailed_scratchpad")


def _digits(x: int, width: int = 0) -> list[int]:
    return [int(ch) for ch in f"{x:0{width}d}"] if width else [int(ch) for ch in str(x)]


def _list(ds: list[int]) -> str:
    return "[" + ",".join(map(str, ds)) + "]"


def _column_sums(a: int, b: int, width: int = 0) -> list[tuple[int, int, int, int, int]]:
    """Per column, least significant first: (digit of a, digit of b, carry in, sum, carry out)."""
    da, db = _digits(a, width)[::-1], _digits(b, width)[::-1]
    carry, out = 0, []
    for i in range(max(len(da), len(db))):
        x = da[i] if i < len(da) else 0
        y = db[i] if i < len(db) else 0
        s = x + y + carry
        out.append((x, y, carry, s, s // 10))
        carry = s // 10
    return out


def render_addition(a: int, b: int, fmt: str, width: int = 0) -> tuple[str, str, str]:
    """Render ``a + b`` in format ``fmt``.

    Parameters
    ----------
    a, b : int
        Non-negative operands.
    fmt : str
        One of :data:`FORMATS`.
    width : int
        Write the operands zero-padded to this many digits (0: as they are). The result is
        never padded.

    Returns
    -------
    prompt, target, result : str
        The prompt the model is given, everything it must generate, and the final result (a
        suffix of ``target``, the part scored for accuracy).

    Examples
    --------
    >>> render_addition(128, 367, "reverse")
    ('128+367=', '594', '594')
    >>> render_addition(128, 367, "simple_scratchpad")[1]
    'A->5 , C->1\\nA->9 , C->0\\nA->4 , C->0.\\n495'
    >>> render_addition(5, 37, "reverse", width=3)
    ('005+037=', '24', '24')
    """
    total = a + b
    sa, sb = (f"{a:0{width}d}", f"{b:0{width}d}") if width else (str(a), str(b))
    if fmt == "plain":
        return f"{sa}+{sb}=", str(total), str(total)
    if fmt == "reverse":
        return f"{sa}+{sb}=", str(total)[::-1], str(total)[::-1]
    prompt = f"Input:\n{sa}+{sb}\nTarget:\n"
    cols = _column_sums(a, b, width)
    if fmt == "simple_scratchpad":
        lines = "\n".join(f"A->{s % 10} , C->{c_out}" for _, _, _, s, c_out in cols)
        return prompt, f"{lines}.\n{total}", str(total)
    if fmt != "detailed_scratchpad":
        raise DataError(f"unknown addition format {fmt!r}; choose one of {', '.join(FORMATS)}")
    xs, ys = _digits(a, width), _digits(b, width)
    acc: list[int] = []
    lines_d = ["<scratch>", f"{_list(xs)} has {len(xs)} digits.", f"{_list(ys)} has {len(ys)} digits."]
    for x, y, c_in, s, c_out in cols:
        lines_d.append(
            f"{_list(xs)} + {_list(ys)} , A={_list(acc)} , C={c_in} , {x}+{y}+{c_in}={s} , A->{s % 10} , C->{c_out}"
        )
        acc.insert(0, s % 10)
        xs, ys = xs[:-1], ys[:-1]
    final_carry = cols[-1][4]
    lines_d.append(f"{_list(xs)} + {_list(ys)} , A={_list(acc)} C={final_carry} , END")
    lines_d.append("</scratch>")
    result = " ".join(str(total))
    return prompt, "\n".join(lines_d) + "\n" + result, result


class AdditionSource(BaseSource):
    """``digits``-digit addition in one of four formats (Lee et al. 2023).

    Parameters
    ----------
    digits : int
        Operands are drawn uniformly from ``0 .. 10**digits - 1`` (1 to 9 digits).
    format : str
        ``plain``, ``reverse``, ``simple_scratchpad`` or ``detailed_scratchpad``.
    seed : int
        Fixes the held-out pairs (and the training pool when ``train_size`` is set).
    eval_size : int
        Number of held-out pairs (at most half of all pairs).
    train_size : int or None
        None: fresh pairs every row. An int: a fixed pool of that many distinct pairs.
    pad_operands : bool or int
        ``true``: write both operands zero-padded to ``digits`` digits (``005+037=``), so every
        operand digit sits at a fixed position. Pairs are drawn uniformly, so without padding 19%
        of 3-digit pairs have a shorter operand, and small models that learn the aligned 3+3
        case rarely learn those (docs/experiments/format.md). An integer ``w >= digits`` pads to
        ``w`` digits instead, so easier sources can share a harder one's columns (1-digit pairs
        written ``003+005=`` beside 3-digit ones, e.g. as a curriculum's prerequisite). The
        result is never padded.
    name : str, optional
        Source name and eval-set name (default ``"addition"``).

    Examples
    --------
    >>> src = AdditionSource(digits=2, format="plain", eval_size=10)
    >>> src.eval_sets(seq_len=12)["addition"].tokens.shape
    (10, 12)
    """

    registry_kind = "addition"
    kind = "task"

    def __init__(
        self,
        *,
        digits: int = 3,
        format: str = "plain",
        seed: int = 0,
        eval_size: int = 1000,
        train_size: int | None = None,
        pad_operands: bool | int = False,
        name: str | None = None,
    ) -> None:
        self.name = opt_name("addition", name)
        self.width = 0
        self.digits = opt_int(self.name, "digits", digits, low=1, high=9)
        if not isinstance(pad_operands, bool) and (
                not isinstance(pad_operands, int) or not self.digits <= pad_operands <= 9):
            raise DataError(
                f"source {self.name!r}: option pad_operands must be true, false or a width from "
                f"digits ({self.digits}) to 9, got {pad_operands!r}"
            )
        self.format = opt_choice(self.name, "format", format, FORMATS)
        self.seed = opt_seed(self.name, seed)
        space = 10 ** (2 * self.digits)
        eval_size = opt_int(self.name, "eval_size", eval_size, low=1, high=space // 2)
        if train_size is not None:
            train_size = opt_int(self.name, "train_size", train_size, low=1, high=space - eval_size)
        self._set_options(
            digits=self.digits, format=self.format, seed=self.seed, eval_size=eval_size,
            train_size=train_size, name=self.name, **({"pad_operands": pad_operands} if pad_operands else {}),
        )
        self.width = 0 if pad_operands is False else self.digits if pad_operands is True else int(pad_operands)
        self._space = space
        top = 10**self.digits - 1
        prompt, target, _ = render_addition(top, top, self.format, self.width)
        self._min_seq_len = len(prompt) + len(target) + 2
        self._eval_keys = np.sort(rng_for(self.seed, 1).choice(space, size=eval_size, replace=False))
        self._eval_table = self._table(self._eval_keys)
        self._pool: np.ndarray | None = None
        self._pool_table: ExampleTable | None = None
        if train_size is not None:
            self._pool = self._draw_train_keys(rng_for(self.seed, 2), train_size, distinct=True)
            self._pool_table = self._table(self._pool)

    def _split(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.divmod(keys, 10**self.digits)

    def _table(self, keys: np.ndarray) -> ExampleTable:
        a, b = self._split(keys)
        prompts, targets, results = [], [], []
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            prompt, target, result = render_addition(x, y, self.format, self.width)
            prompts.append(prompt)
            targets.append(target)
            results.append(result)
        return ExampleTable.from_texts(prompts, targets, results)

    def _draw_train_keys(self, rng: np.random.Generator, n: int, *, distinct: bool) -> np.ndarray:
        """``n`` pair keys ``a * 10**digits + b`` outside the held-out set."""
        out = np.empty(0, dtype=np.int64)
        while len(out) < n:
            need = n - len(out)
            draw = rng.integers(0, self._space, size=need + need // 8 + 8, dtype=np.int64)
            draw = draw[~np.isin(draw, self._eval_keys)]
            out = np.concatenate([out, draw])
            if distinct:
                _, first = np.unique(out, return_index=True)
                out = out[np.sort(first)]
        return out[:n]

    def pairs(self, split: str) -> np.ndarray:
        """The ``(n, 2)`` pairs of ``split``: ``"heldout"``, or ``"train"`` (the pool; needs ``train_size``)."""
        split = opt_choice(self.name, "split", split, ["train", "heldout"])
        keys = self._eval_keys if split == "heldout" else self._pool
        if keys is None:
            raise DataError(f"source {self.name!r} draws fresh training pairs; set train_size to get a fixed pool")
        return np.stack(self._split(keys), axis=1)

    def parse_result(self, result: str) -> int:
        """The sum a generated result encodes in this format (``"594"`` -> 495 for ``reverse``)."""
        text = result.replace(" ", "")
        return int(text[::-1] if self.format == "reverse" else text)

    def min_seq_len(self) -> int:
        """The smallest ``seq_len`` that fits every example (the longest is ``999+999``-like)."""
        return self._min_seq_len

    def sample(self, rng: np.random.Generator, n: int, seq_len: int) -> Batch:
        """``n`` training rows: fresh pairs, or draws from the fixed pool."""
        seq_len = self._fit(seq_len)
        n = check_count(n, self.name)
        if self._pool_table is not None:
            return self._pool_table.take(rng.integers(0, len(self._pool_table), size=n), seq_len, self.name)
        table = self._table(self._draw_train_keys(rng, n, distinct=False))
        return table.take(np.arange(n), seq_len, self.name)

    def eval_sets(self, seq_len: int) -> dict[str, Batch]:
        """``{name: the held-out pairs}`` in the training format."""
        seq_len = self._fit(seq_len)
        return {self.name: self._eval_table.take(np.arange(len(self._eval_table)), seq_len, self.name)}
