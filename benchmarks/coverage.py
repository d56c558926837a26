"""Measure interval coverage on synthetic data with known parameters (the slow tests' settings).

Run: ``python benchmarks/coverage.py``; writes bench-results/coverage.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scalelab
from tests.fit.test_coverage import (
    TRUE_CH,
    TRUE_PL,
    _chinchilla_data,
    _coverage,
    _power_law_data,
)


def main() -> None:
    out = {
        "power_law_mse_wald_300": _coverage(
            [scalelab.fit("power_law", _power_law_data(s), y="loss", loss="mse") for s in range(300)], TRUE_PL
        ),
        "power_law_huber_bootstrap200_150": _coverage(
            [
                scalelab.fit("power_law", _power_law_data(s), y="loss", loss="huber", delta=0.02,
                             bootstrap=200, seed=s)
                for s in range(150)
            ],
            TRUE_PL,
        ),
        "chinchilla_huber_bootstrap200_60": _coverage(
            [
                scalelab.fit("chinchilla", _chinchilla_data(s), y="loss", bootstrap=200, seed=s, starts=100)
                for s in range(60)
            ],
            TRUE_CH,
        ),
    }
    Path("bench-results").mkdir(exist_ok=True)
    Path("bench-results/coverage.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
