"""Weighted Huber fits polish with L-BFGS-B on the exact objective; its ABNORMAL line-search
stop at machine precision is a converged optimum when the projected gradient vanishes."""

from __future__ import annotations

import numpy as np
import pytest

from scalelab.fit import fit
from scalelab.store import read_table


def test_constant_weights_converge_to_the_unweighted_optimum(shared_data) -> None:
    table = read_table(shared_data / "chinchilla_epoch_svg_extracted.csv")
    rows = table.filter((table["excluded_by_epoch"] == 0) & (table["params_N"] < 5e8))
    data = {name: rows[name] for name in ("params_N", "tokens_D", "loss")}
    data["w"] = np.full(len(rows), 2.0)
    x = {"N": "params_N", "D": "tokens_D"}
    plain = fit("chinchilla", data, x=x, y="loss")
    weighted = fit("chinchilla", data, x=x, y="loss", weights="w")  # raised FitError before
    assert weighted.converged
    assert weighted.objective == pytest.approx(2 * plain.objective, rel=1e-6)
    for name in ("E", "alpha", "beta"):
        assert weighted.values()[name] == pytest.approx(plain.values()[name], rel=1e-4)
