"""Device selection, precision and autocast (the CPU paths; CUDA paths need a GPU)."""

from __future__ import annotations

import pytest
import torch

from scalelab.errors import DataError
from scalelab.harness.device import autocast, maybe_compile, resolve_precision, select_device


def test_select_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DataError, match="unknown device"):
        select_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="no GPU"):
        select_device("cuda")


def test_precision_auto_is_fp32_on_cpu_and_bf16_on_cuda() -> None:
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(DataError, match="unknown precision"):
        resolve_precision("fp8", torch.device("cpu"))


def test_autocast_is_a_no_op_in_fp32_and_bf16_when_asked() -> None:
    lin = torch.nn.Linear(4, 4)
    x = torch.ones(2, 4)
    with autocast(torch.device("cpu"), "auto"):
        assert lin(x).dtype == torch.float32
    with autocast(torch.device("cpu"), "bf16"):
        assert lin(x).dtype == torch.bfloat16


def test_compile_is_off_unless_asked() -> None:
    lin = torch.nn.Linear(2, 2)
    assert maybe_compile(lin, False) is lin
