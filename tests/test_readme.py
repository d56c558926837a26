"""The README's two fresh-machine commands stay true: CI runs the test one, the CLI parses the other."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _fresh_machine_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_has_two_fresh_machine_commands() -> None:
    cmds = _fresh_machine_commands()
    assert len(cmds) == 2
    assert "scalelab demo" in cmds[0] and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command() -> None:
    steps = [s.strip() for s in _fresh_machine_commands()[1].split("&&")]
    ci_lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    for step in steps:
        if step.startswith(("python3 -m venv", ". ")):
            continue  # CI makes its own fresh venv the same way
        assert step in ci_lines, f"README step {step!r} is not run by .ci/run"


def test_readme_main_job_parses() -> None:
    from scalelab.cli.main import build_parser

    main_job = _fresh_machine_commands()[0].split("&&")[-1].strip()
    argv = shlex.split(main_job)
    assert argv[0] == "scalelab"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "demo" and args.out == "scalelab-demo"
