"""A causal MLP: next-token logits from an MLP of the one-hot prefix (``model.kind = "mlp"``).

Michaud et al. (2023, arXiv:2303.13506) train ReLU MLPs on multitask sparse parity; this is that
model family in the harness's next-token interface. Position ``t``'s logits are an MLP of the
zero-padded one-hot encoding of the prefix ``x_0 .. x_t``:

* input layer: ``h_t = relu(sum_{s <= t} E[s, x_s] + b_t)``, with ``E`` a
  ``(block_size, vocab_size, d_model)`` table and ``b`` a ``(block_size, d_model)`` bias. It is
  computed with a gather and a cumulative sum over positions, and is exactly a linear layer on
  the concatenated one-hot vectors of positions ``0 .. block_size - 1`` (zeros after ``t``) with a
  position-specific bias: position ``t`` sees its whole prefix and nothing after it;
* ``n_layer - 1`` hidden layers ``h <- relu(W h + c)`` of width ``d_model``;
* a linear output layer (with bias) to the vocabulary.

So ``n_layer = 1`` is the one-hidden-layer MLP of Michaud et al. (input layer, ReLU, output
layer). Dropout (``dropout > 0``) is applied after every ReLU.

Parameter counts. ``E`` and ``b`` are stored as :class:`torch.nn.Embedding` tables (``E``
flattened to ``block_size * vocab_size`` rows): the input layer is a lookup and a prefix sum,
costing no multiply-adds per token, like the GPT's token and position embeddings. So, as for the
GPT (:func:`scalelab.harness.model.count_params`), *non-embedding* excludes them: it counts the
hidden layers and the output layer, ``(n_layer - 1)(d^2 + d) + d V + V``, the parameters a
token's forward pass multiplies through, which keeps ``flops = 6 * non_embedding * tokens`` the
training-compute estimate. The total adds the input table and bias, ``T V d + T d``; most of the
table's rows are never used by a task whose tokens are a few of the 259 byte ids. Both counts
are computed without torch by :func:`scalelab.harness.config.mlp_params`.

Initial weights (from the run's ``init_seed`` generator; every bias 0): ``E`` normal with std
``1 / sqrt(block_size)``, so the input layer's pre-activation has variance ``(t + 1) /
block_size <= 1``; hidden layers He-normal (std ``sqrt(2 / d)``); the output layer normal with
std ``1 / sqrt(d)``.

Examples
--------
>>> import torch
>>> model = CausalMLP(MLPConfig(n_layer=2, d_model=16, vocab_size=11, block_size=8),
...                   generator=torch.Generator().manual_seed(0))
>>> model(torch.zeros(3, 8, dtype=torch.long)).shape
torch.Size([3, 8, 11])
>>> from scalelab.harness.model import count_params
>>> count_params(model) == mlp_params(2, 16, vocab_size=11, block_size=8)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.errors import DataError
from scalelab.harness.config import mlp_params

__all__ = ["CausalMLP", "MLPConfig", "mlp_params"]


@dataclass(frozen=True)
class MLPConfig:
    """Shape of a :class:`CausalMLP`.

    Parameters
    ----------
    n_layer : int
        ReLU layers: the input layer and ``n_layer - 1`` hidden layers (1 = one hidden layer).
    d_model : int
        Width of every ReLU layer.
    vocab_size : int
        Number of token ids (259 for scalelab's byte vocabulary).
    block_size : int
        Longest input sequence (the input layer has one table per position).
    dropout : float
        Dropout after every ReLU (0 disables it).
    """

    n_layer: int
    d_model: int
    vocab_size: int
    block_size: int
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "vocab_size", "block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(f"MLPConfig.{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise DataError(f"dropout must be in [0, 1), got {self.dropout!r}")


class CausalMLP(nn.Module):
    """An MLP of the one-hot prefix at every position, returning next-token logits.

    Parameters
    ----------
    cfg : MLPConfig
        The shape.
    generator : torch.Generator, optional
        Source of the initial weights (see the module docstring). Pass one seeded with the run's
        ``init_seed`` so initialisation does not depend on (or disturb) the global RNG.
    """

    def __init__(self, cfg: MLPConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Embedding(cfg.block_size * cfg.vocab_size, cfg.d_model)  # E[s, v] at row s V + v
        self.inp_bias = nn.Embedding(cfg.block_size, cfg.d_model)  # b_t
        self.hidden = nn.ModuleList(nn.Linear(cfg.d_model, cfg.d_model) for _ in range(cfg.n_layer - 1))
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.drop = nn.Dropout(cfg.dropout)
        self.reset_parameters(generator)

    def _hidden(self) -> list[nn.Linear]:
        return [layer for layer in self.hidden if isinstance(layer, nn.Linear)]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw fresh initial weights from ``generator`` (biases 0)."""
        d = self.cfg.d_model
        nn.init.normal_(self.inp.weight, 0.0, 1.0 / math.sqrt(self.cfg.block_size), generator=generator)
        self.inp_bias.weight.zero_()
        for layer in self._hidden():
            nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / d), generator=generator)
            layer.bias.zero_()
        nn.init.normal_(self.head.weight, 0.0, 1.0 / math.sqrt(d), generator=generator)
        self.head.bias.zero_()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of the next token at every position.

        Parameters
        ----------
        idx : torch.Tensor
            ``(B, T)`` int64 token ids in ``[0, vocab_size)``, ``T <= block_size``.

        Returns
        -------
        torch.Tensor
            ``(B, T, vocab_size)`` logits (in the autocast dtype when autocast is on).

        Raises
        ------
        DataError
            If the sequence is longer than ``block_size`` or a token id is outside the
            vocabulary (it would otherwise read another position's row of the input table).
        """
        T = idx.shape[1]  # idx: (B, T)
        V = self.cfg.vocab_size
        if self.cfg.block_size < T:
            raise DataError(f"sequence of {T} tokens is longer than block_size {self.cfg.block_size}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= V):
            raise DataError(f"token ids must be in [0, {V}), got {int(idx.min())}..{int(idx.max())}; "
                            "build the model with the data's vocab_size")
        pos = torch.arange(T, device=idx.device)  # (T,)
        rows = self.inp(pos * V + idx)  # (B, T, d): E[t, x_t]
        h = rows.cumsum(dim=1) + self.inp_bias(pos)  # (B, T, d): sum_{s<=t} E[s, x_s] + b_t
        h = self.drop(F.relu(h))  # (B, T, d)
        for layer in self._hidden():
            h = self.drop(F.relu(layer(h)))  # (B, T, d)
        return self.head(h)  # (B, T, V)
