"""The wheel carries the transports: build it, install it in a fresh venv, import them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_installs_and_imports_the_transports(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels, ROOT)
    (wheel,) = wheels.glob("jackstalk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("blocking", "asyncio", "trio", "server"):
        assert f"jackstalk/transports/{module}.py" in names
    assert "jackstalk/py.typed" in names

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel)
    # Run from an empty directory so that nothing of the source tree can be imported.
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    out = run(
        python,
        "-c",
        "import jackstalk, jackstalk.transports.blocking, jackstalk.transports.asyncio;"
        "print(jackstalk.Client.__module__, jackstalk.AsyncClient.__module__,"
        " jackstalk.transports.__file__)",
        cwd=empty,
    )
    client_module, async_module, location = out.split()
    assert client_module == "jackstalk.transports.blocking"
    assert async_module == "jackstalk.transports.asyncio"
    assert "site-packages" in location
    # The console script is installed too.
    assert "demo" in run(venv / "bin" / "jackstalk", "--help", cwd=empty)
