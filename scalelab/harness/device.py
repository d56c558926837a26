"""Where and in what precision a run computes: device choice, autocast, optional compile.

CPU is the default everywhere and runs in fp32. On CUDA, ``precision="auto"`` means bf16
autocast for the forward pass (losses are always computed in fp32 by the caller, from logits
cast with ``.float()``). The CUDA-only lines are marked ``# CUDA``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from scalelab.errors import DataError

__all__ = ["DEVICES", "PRECISIONS", "autocast", "maybe_compile", "rank_device", "resolve_precision", "select_device"]

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


def select_device(name: str = "auto") -> torch.device:
    """The torch device for ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    DataError
        For an unknown name, or ``"cuda"`` on a machine without a usable GPU.
    """
    if name not in DEVICES:
        raise DataError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():  # CUDA
        return torch.device("cuda")
    if name == "cuda":
        raise DataError("device 'cuda' was asked for but torch sees no GPU; use --device cpu or auto")
    return torch.device("cpu")


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """The device of a data-parallel rank: ``cuda:LOCAL_RANK`` (made current) on CUDA, else ``device``.

    Raises
    ------
    DataError
        When the host has fewer GPUs than ``local_rank + 1``.
    """
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count()  # CUDA
    if local_rank >= count:  # CUDA
        raise DataError(f"LOCAL_RANK {local_rank} needs GPU {local_rank} but this host has {count}; "
                        "start at most one process per GPU (torchrun --nproc_per_node)")
    rank_dev = torch.device("cuda", local_rank)  # CUDA
    torch.cuda.set_device(rank_dev)  # CUDA
    return rank_dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``: ``"auto"`` is bf16 on CUDA and fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise DataError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast the forward pass to bf16 when ``precision`` resolves to bf16; otherwise nothing."""
    if resolve_precision(precision, device) == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled`` (meant for CUDA runs), else ``model`` itself.

    Keep a reference to the uncompiled module for state dicts: the compiled wrapper prefixes
    every key with ``_orig_mod.``.
    """
    if not enabled:
        return model
    return torch.compile(model)  # type: ignore[return-value]
