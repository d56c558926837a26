"""A small GPT-style decoder (nanoGPT's shape) and the size ladder used by grids.

Token and learned position embeddings, pre-LayerNorm blocks of causal self-attention
(``torch.nn.functional.scaled_dot_product_attention``) and a 4x GELU MLP, a final LayerNorm and
an output head tied to the token embedding. Linear layers and LayerNorms carry biases.

Parameter counts follow Kaplan et al. (2020): ``non_embedding`` excludes the token and position
embeddings (the tied output head is the token embedding, so it is not counted twice). One block
of width ``d`` has ``12 d^2 + 13 d`` parameters; the final LayerNorm adds ``2 d``. The size
ladder is defined with the (torch-free) run config and re-exported here.

Examples
--------
>>> import torch
>>> model = GPT(GPTConfig.from_size("tiny", vocab_size=259, block_size=32), generator=torch.Generator().manual_seed(0))
>>> count_params(model)[1]
21720
>>> model(torch.zeros(2, 32, dtype=torch.long)).shape
torch.Size([2, 32, 259])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.errors import DataError
from scalelab.harness.config import SIZE_LADDER, ModelSize, non_embedding_params

__all__ = ["GPT", "SIZE_LADDER", "GPTConfig", "ModelSize", "count_params", "non_embedding_params"]


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a :class:`GPT`.

    Parameters
    ----------
    n_layer, n_head, d_model : int
        Depth, attention heads and width; ``d_model`` must be divisible by ``n_head``.
    vocab_size : int
        Number of token ids (259 for scalelab's byte vocabulary).
    block_size : int
        Longest input sequence (the number of learned positions).
    dropout : float
        Dropout on attention weights and residual branches (0 disables it).
    """

    n_layer: int
    n_head: int
    d_model: int
    vocab_size: int
    block_size: int
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "d_model", "vocab_size", "block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head:
            raise DataError(
                f"d_model {self.d_model} is not divisible by n_head {self.n_head}; "
                "choose a width that is a multiple of the head count"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise DataError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @classmethod
    def from_size(cls, size: str, *, vocab_size: int, block_size: int, dropout: float = 0.0) -> GPTConfig:
        """The config of a named rung of :data:`SIZE_LADDER`."""
        if size not in SIZE_LADDER:
            raise DataError(f"unknown model size {size!r}; choose one of {', '.join(SIZE_LADDER)}")
        s = SIZE_LADDER[size]
        return cls(s.n_layer, s.n_head, s.d_model, vocab_size, block_size, dropout)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention through ``scaled_dot_product_attention``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # batch, time, d_model
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_drop(self.proj(y))  # (B, T, C)


class MLP(nn.Module):
    """Two linear layers with a 4x wider GELU hidden layer."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """A pre-LN transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class GPT(nn.Module):
    """A decoder-only transformer returning next-token logits.

    Parameters
    ----------
    cfg : GPTConfig
        The shape.
    generator : torch.Generator, optional
        Source of the initial weights (normal, std 0.02; residual projections scaled by
        ``1/sqrt(2 n_layer)``; zero biases). Pass one seeded with the run's ``init_seed``
        so initialisation does not depend on (or disturb) the global RNG.
    """

    def __init__(self, cfg: GPTConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.block_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw fresh initial weights (GPT-2 scheme) from ``generator``."""
        resid_std = 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if p.dim() == 1:  # biases and LayerNorm shifts/scales
                p.fill_(1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else 0.0)
            else:
                std = resid_std if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std, generator=generator)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of the next token at every position.

        Parameters
        ----------
        idx : torch.Tensor
            ``(B, T)`` int64 token ids, ``T <= block_size``.

        Returns
        -------
        torch.Tensor
            ``(B, T, vocab_size)`` logits (in the autocast dtype when autocast is on).
        """
        T = idx.shape[1]  # idx: (B, T)
        if self.cfg.block_size < T:
            raise DataError(f"sequence of {T} tokens is longer than block_size {self.cfg.block_size}")
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.lm_head(self.ln_f(x))  # (B, T, V)


def count_params(model: nn.Module) -> tuple[int, int]:
    """Total and non-embedding parameter counts of ``model``.

    Shared (tied) tensors are counted once. Non-embedding excludes every ``nn.Embedding``
    (token and position embeddings), so the tied output head is excluded with the token table.
    """
    seen: set[int] = set()
    total = 0
    for p in model.parameters():  # parameters() yields each shared tensor once
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    embedding = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))
    return total, total - embedding
