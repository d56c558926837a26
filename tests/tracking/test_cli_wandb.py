"""The ``scalelab wandb`` command: cheap to import, helpful without a subcommand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scalelab.cli.cmd_wandb import main


def test_imports_stay_cheap() -> None:
    """The CLI module and the package load neither wandb nor numpy/torch until used."""
    code = ("import sys, scalelab.cli.cmd_wandb, scalelab.tracking\n"
            "print([m for m in ('wandb', 'numpy', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_a_subcommand_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wandb"]) == 2
    err = capsys.readouterr().err
    assert "push" in err and "pull" in err and "import-offline" in err


def test_unknown_subcommand_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["wandb", "sync"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "invalid choice: 'sync'" in err[0]
