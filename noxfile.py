"""Developer tasks: `nox` runs tests, typecheck and lint; `nox -s bench` runs the benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "typecheck", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

GROUPS: dict[str, list[str]] = nox.project.load_toml("pyproject.toml")["dependency-groups"]
COVERAGE_FLOOR = "95"


@nox.session
def tests(session: nox.Session) -> None:
    """Install the project (not editable, so packaging is tested too) and run the suite."""
    session.install(".[trio]", *GROUPS["test"])
    session.run("coverage", "erase")
    session.run(
        "python", "-bb", "-m", "coverage", "run", "-m", "pytest", *session.posargs
    )
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report", f"--fail-under={COVERAGE_FLOOR}")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the installed package, the tests and this file."""
    session.install(".[trio]", *GROUPS["typecheck"])
    session.run("mypy", "--strict", "-p", "jackstalk")
    session.run("mypy", "--strict", "tests", "noxfile.py")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format checks."""
    session.install(*GROUPS["lint"])
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
