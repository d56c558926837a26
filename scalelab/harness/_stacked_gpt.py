"""K GPTs of one shape as one parameter matrix, with a hand-batched forward pass.

The ensemble trainer (:mod:`scalelab.harness.ensemble`) keeps the parameters of K models of
the same shape in one ``(K, P)`` float tensor, ``flat``: row ``k`` is member ``k``'s parameters,
laid out tensor after tensor in :meth:`torch.nn.Module.named_parameters` order of
:class:`~scalelab.harness.model.GPT`, matrices (>= 2-D, the tensors AdamW decays) first. Each
named parameter is a ``(K, *shape)`` view into ``flat``, so the optimiser updates every tensor
of every member with a few operations on ``flat`` and its gradient twin.

The forward pass is :class:`~scalelab.harness.model.GPT`'s, written with batched matrix
products over the member dimension (``torch.baddbmm`` with each member's weights); attention
calls ``scaled_dot_product_attention`` on the members' batches stacked along the batch axis, so
every head is computed by the same kernel as in the single model. The tied output layer runs one
member at a time (:meth:`StackedGPT.head`), so the largest activation, the ``(rows, vocab)``
logits, exists for one member at a time (as fast as all members' at once in
``benchmarks/bench_ensemble.py --forward``, with a K-th of the memory). The tests compare the
logits with ``GPT.forward`` member by member (they are bit-identical); a change to the model must
be mirrored here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from scalelab.errors import DataError
from scalelab.harness.model import GPT

__all__ = ["StackedGPT"]


class StackedGPT:
    """The parameters of K same-shaped GPTs in one ``(K, P)`` tensor, and their forward pass.

    Parameters
    ----------
    models : sequence of GPT
        The members, all with the same :class:`~scalelab.harness.model.GPTConfig` and no
        dropout. Their current parameters are copied in; the modules are not kept.

    Attributes
    ----------
    flat : torch.Tensor
        ``(K, P)`` parameters; ``flat[:, :n_decay]`` are the matrices (weight-decayed).
    grad : torch.Tensor
        ``(K, P)`` gradients of the last :meth:`backward`.
    n_decay : int
        Number of leading columns of ``flat`` that hold matrices.
    """

    def __init__(self, models: Sequence[GPT]) -> None:
        if not models:
            raise DataError("an ensemble needs at least one model")
        cfg = models[0].cfg
        for m in models[1:]:
            if m.cfg != cfg:
                raise DataError(f"ensemble members must have one model shape; got {m.cfg} and {cfg}")
        if cfg.dropout:
            raise DataError(f"the stacked forward pass has no dropout (model.dropout is {cfg.dropout}); "
                            "set model.dropout = 0 to train in an ensemble")
        self.cfg = cfg
        self.k = len(models)
        named = list(models[0].named_parameters())  # the tied head is listed once, as wte.weight
        order = [n for n, p in named if p.dim() >= 2] + [n for n, p in named if p.dim() < 2]
        shapes = dict((n, tuple(p.shape)) for n, p in named)
        self.names = order
        self.shapes = shapes
        self.offsets: dict[str, tuple[int, int]] = {}
        at = 0
        for n in order:
            size = int(torch.Size(shapes[n]).numel())
            self.offsets[n] = (at, at + size)
            at += size
        self.n_params = at
        self.n_decay = sum(int(torch.Size(shapes[n]).numel()) for n, p in named if p.dim() >= 2)
        device = next(models[0].parameters()).device
        dtype = next(models[0].parameters()).dtype
        self.flat = torch.empty(self.k, self.n_params, device=device, dtype=dtype)  # (K, P)
        self.grad = torch.zeros_like(self.flat)  # (K, P)
        for k, m in enumerate(models):
            self.load_member(k, m)
        self.params = self.views(self.flat, requires_grad=True)
        self._leaves = [self.params[n] for n in self.names]

    # -- layout
    def views(self, flat: torch.Tensor, *, requires_grad: bool = False) -> dict[str, torch.Tensor]:
        """Name -> ``(K, *shape)`` view of a ``(K, P)`` tensor laid out like :attr:`flat`."""
        out: dict[str, torch.Tensor] = {}
        for n in self.names:
            lo, hi = self.offsets[n]
            v = flat[:, lo:hi].view(flat.shape[0], *self.shapes[n])
            out[n] = v.requires_grad_() if requires_grad else v
        return out

    @torch.no_grad()
    def load_member(self, k: int, model: GPT) -> None:
        """Copy ``model``'s parameters into member ``k``'s row."""
        params = dict(model.named_parameters())
        for n in self.names:
            lo, hi = self.offsets[n]
            self.flat[k, lo:hi].copy_(params[n].detach().reshape(-1))

    @torch.no_grad()
    def store_member(self, k: int, model: GPT) -> None:
        """Copy member ``k``'s parameters into ``model`` (e.g. to take its state dict)."""
        params = dict(model.named_parameters())
        for n in self.names:
            lo, hi = self.offsets[n]
            params[n].copy_(self.flat[k, lo:hi].view(self.shapes[n]))

    def subset(self, members: Sequence[int]) -> dict[str, torch.Tensor]:
        """Parameters of some members only (copies), for evaluation."""
        if list(members) == list(range(self.k)):
            return {n: v.detach() for n, v in self.params.items()}
        index = torch.as_tensor(list(members), device=self.flat.device)
        return self.views(self.flat.detach().index_select(0, index))

    # -- compute
    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of ``loss`` with respect to every member's parameters, into :attr:`grad`."""
        grads = torch.autograd.grad(loss, self._leaves)
        torch.cat([g.reshape(self.k, -1) for g in grads], dim=1, out=self.grad)

    def forward(self, params: Mapping[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits of each member on its own rows.

        Parameters
        ----------
        params : mapping of str to torch.Tensor
            ``(K', *shape)`` per parameter name: :attr:`params` or a :meth:`subset`.
        idx : torch.Tensor
            ``(K', B, T)`` int64 token ids, ``T <= block_size``.

        Returns
        -------
        torch.Tensor
            ``(K', B, T, vocab_size)`` logits.
        """
        K, B, T = idx.shape
        x = self.hidden(params, idx)  # (K, N, C)
        return torch.stack([self.head(params, x, k) for k in range(K)]).view(K, B, T, self.cfg.vocab_size)

    def head(self, params: Mapping[str, torch.Tensor], hidden: torch.Tensor, k: int) -> torch.Tensor:
        """Member ``k``'s logits ``(N, V)`` from its final hidden states (the tied output layer),
        computed as :class:`GPT` computes them."""
        return F.linear(hidden[k], params["wte.weight"][k])  # (N, C) -> (N, V)

    def hidden(self, params: Mapping[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states (after ``ln_f``) of each member on its own rows: ``(K', B*T, C)``."""
        K, B, T = idx.shape
        cfg = self.cfg
        if cfg.block_size < T:
            raise DataError(f"sequence of {T} tokens is longer than block_size {cfg.block_size}")
        C, V, nh = cfg.d_model, cfg.vocab_size, cfg.n_head
        wte = params["wte.weight"]  # (K, V, C)
        offsets = torch.arange(K, device=idx.device).view(K, 1, 1) * V  # (K, 1, 1)
        tok = F.embedding(idx + offsets, wte.reshape(K * V, C))  # (K, B, T, C)
        x = (tok + params["wpe.weight"][:, :T].unsqueeze(1)).view(K, B * T, C)  # (K, N, C)
        for i in range(cfg.n_layer):
            p = f"blocks.{i}."
            a = _layer_norm(x, params[p + "ln_1.weight"], params[p + "ln_1.bias"])  # (K, N, C)
            qkv = _linear(a, params[p + "attn.qkv.weight"], params[p + "attn.qkv.bias"])  # (K, N, 3C)
            q, k, v = qkv.split(C, dim=2)  # 3 x (K, N, C)
            q = q.reshape(K * B, T, nh, C // nh).transpose(1, 2)  # (K*B, nh, T, hs)
            k = k.reshape(K * B, T, nh, C // nh).transpose(1, 2)  # (K*B, nh, T, hs)
            v = v.reshape(K * B, T, nh, C // nh).transpose(1, 2)  # (K*B, nh, T, hs)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (K*B, nh, T, hs)
            y = y.transpose(1, 2).contiguous().view(K, B * T, C)  # (K, N, C)
            x = x + _linear(y, params[p + "attn.proj.weight"], params[p + "attn.proj.bias"])  # (K, N, C)
            a = _layer_norm(x, params[p + "ln_2.weight"], params[p + "ln_2.bias"])  # (K, N, C)
            h = F.gelu(_linear(a, params[p + "mlp.fc.weight"], params[p + "mlp.fc.bias"]))  # (K, N, 4C)
            x = x + _linear(h, params[p + "mlp.proj.weight"], params[p + "mlp.proj.bias"])  # (K, N, C)
        return _layer_norm(x, params["ln_f.weight"], params["ln_f.bias"])  # (K, N, C)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T + bias`` per member: (K, N, in), (K, out, in), (K, out) -> (K, N, out)."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last axis with each member's scale and shift: (K, N, C) -> (K, N, C)."""
    normed = F.layer_norm(x, (x.shape[-1],))  # eps 1e-5, as nn.LayerNorm
    return torch.addcmul(bias.unsqueeze(1), normed, weight.unsqueeze(1))
