"""Developer tasks: `nox` runs tests, typecheck and lint; `nox -s bench` runs the benchmarks.

`tests` runs once per supported CPython (`nox -s tests-3.12` runs one); an interpreter that
is not installed is skipped, not an error, so `nox` passes on a machine with only some.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["tests", "typecheck", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"
# Skip a supported Python that is not installed, also on CI (where nox errors by default).
nox.options.error_on_missing_interpreters = False

PYTHONS = ["3.11", "3.12", "3.13"]
"""The CPython versions jackstalk supports (pyproject.toml's classifiers say the same)."""

GROUPS: dict[str, list[str]] = nox.project.load_toml("pyproject.toml")["dependency-groups"]
COVERAGE_FLOOR = "95"


def _runs(program: str | None) -> bool:
    """Whether ``program`` exists and starts (a pyenv shim of an inactive version does not)."""
    if program is None:
        return False
    try:
        return subprocess.run([program, "-c", ""], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def _find_pythons() -> None:
    """Make every installed supported CPython runnable as ``pythonX.Y``, where nox looks.

    pyenv installs versions side by side, but its ``python3.12`` shim only runs when 3.12 is
    an active version. For each supported version that does not run by name, a wrapper in
    ``.nox/pythons`` (put first on PATH) runs the newest installed ``X.Y.*`` of pyenv.
    """
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    wrappers = Path(__file__).resolve().parent / ".nox" / "pythons"
    for version in PYTHONS:
        name = f"python{version}"
        if _runs(shutil.which(name)):
            continue
        found = [p for p in root.glob(f"{version}.*/bin/{name}") if _runs(str(p))]
        if not found:
            continue  # not installed: its session is skipped
        newest = max(found, key=lambda p: [int(n) for n in p.parts[-3].split(".") if n.isdigit()])
        wrappers.mkdir(parents=True, exist_ok=True)
        wrapper = wrappers / name
        wrapper.write_text(f'#!/bin/sh\nexec "{newest}" "$@"\n', encoding="utf-8")
        wrapper.chmod(0o755)
    if wrappers.is_dir():
        os.environ["PATH"] = f"{wrappers}{os.pathsep}{os.environ.get('PATH', '')}"


_find_pythons()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Install the project (not editable, so packaging is tested too) and run the suite.

    Each session (one per Python version, run one after another) erases the coverage data,
    combines what its run and the run's subprocesses wrote, and checks it against the floor.
    """
    session.install(".[trio,web]", *GROUPS["test"])
    session.run("coverage", "erase")
    session.run("python", "-bb", "-m", "coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report", f"--fail-under={COVERAGE_FLOOR}")


@nox.session
def interop(session: nox.Session) -> None:
    """Other Python clients (greenstalk, pystalk) against the embedded server."""
    session.install(".[trio]", "pytest>=8", "greenstalk", "pystalk")
    session.run("python", "-m", "pytest", "tests/interop", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the installed package, the tests and this file."""
    session.install(".[trio,web]", *GROUPS["typecheck"])
    session.run("mypy", "--strict", "-p", "jackstalk")
    session.run("mypy", "--strict", "tests", "noxfile.py")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format checks."""
    session.install(*GROUPS["lint"])
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def generate(session: nox.Session) -> None:
    """Rewrite the client methods from the operations (src/jackstalk/_api/generate.py).

    Run after changing an operation or a reply conversion; `-- --check` only reports stale
    modules. The test suite fails while they are stale.
    """
    session.install("-e", ".")
    session.run("python", "-m", "jackstalk._api.generate", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """The long no-job-lost soak through the fault proxy (never part of `nox`).

    Runs tests/reliability/soak.py against a private beanstalkd: producers and consumers of
    all three clients, connections dropped, reset, stalled, split and delayed, consumers
    killed mid-job; prints jobs, faults injected, duplicates and lost, and fails if a job
    was lost or left behind. posargs replace the default `--seconds 300`, e.g.
    `nox -s soak -- --seconds 600 --seed 3`. `nox -s soak -- --cluster --seconds 60` runs
    tests/reliability/soak_cluster.py instead: three beanstalkd with binlogs behind fault
    proxies, one killed and restarted in a loop, producers and consumers on a Cluster.
    docs/reliability.md has the figures.
    """
    session.install(".[trio]", "pytest>=8")  # pytest: the cluster soak's server kit uses it
    session.run("python", "tests/reliability/soak.py", *(session.posargs or ["--seconds", "300"]))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark jackstalk against the other Python clients (never part of `nox`).

    Installs the competitors at the versions the published figures were measured with, runs
    tests/bench/bench_clients.py (by default 9 repetitions of 3,000 operations per
    measurement, 6,000 per batch put; posargs are passed through, e.g. `-- --repeat 15`) and
    regenerates docs/performance.md (`-- --no-docs` leaves it alone); then times the web
    console's refresh of 1,000 tubes (tests/bench/web_bench.py).
    """
    session.install(
        ".[trio,web]",  # web: the console's refresh cost (tests/bench/web_bench.py)
        "greenstalk==2.1.1",
        "pystalk==0.9.1",
        "aiostalk==1.3.1",
        "beanstalkc3==0.4.0",  # the Python 3 beanstalkc; works on 3.11 with a safe YAML loader
        "PyYAML>=6",
    )
    command = ["nox", "-s", "bench", *(["--", *session.posargs] if session.posargs else [])]
    session.run(
        "python",
        "tests/bench/bench_clients.py",
        "--write-docs",
        *session.posargs,
        env={"JACKSTALK_BENCH_COMMAND": " ".join(command)},
    )
    # The web console's refresh of 1,000 tubes (docs/web.md quotes it); fails over 100 ms.
    session.run("python", "tests/bench/web_bench.py")
