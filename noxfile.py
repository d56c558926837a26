"""Automation: `nox -s tests`, `nox -s lint`, `nox -s typecheck`, `nox -s bench`."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"  # CPU build available offline; the package itself asks for a range


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (pass pytest options after --, e.g. `nox -s tests -- -m "not slow"`)."""
    session.install(TORCH, "-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "scalelab", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "scalelab")


@nox.session
def bench(session: nox.Session) -> None:
    """Speed benchmarks; numbers go to bench-results/*.json (`-- --full` runs the slow baseline in full)."""
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/bench_fit.py", *session.posargs)
    session.run("python", "benchmarks/bench_ensemble.py")  # 20-30 min on 2 CPU cores
