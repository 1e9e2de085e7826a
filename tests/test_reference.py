"""The API reference is current, and every public name is documented."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import jackstalk

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_reference", DOCS / "make_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_page_is_current() -> None:
    expected = _generator().render()
    actual = (DOCS / "api.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/api.md is stale: run `python docs/make_reference.py`"


def test_every_public_name_has_a_docstring() -> None:
    undocumented = []
    for name in jackstalk.__all__:
        obj = getattr(jackstalk, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ or "").strip():
            undocumented.append(name)
    assert undocumented == []


def test_every_client_method_has_a_docstring() -> None:
    for cls in (jackstalk.Client, jackstalk.AsyncClient, jackstalk.TrioClient, jackstalk.Worker):
        for name, value in inspect.getmembers(cls):
            if name.startswith("_") or not callable(value):
                continue
            assert (value.__doc__ or "").strip(), f"{cls.__name__}.{name} has no docstring"


def test_every_public_name_appears_in_the_reference() -> None:
    page = (DOCS / "api.md").read_text(encoding="utf-8")
    missing = [name for name in jackstalk.__all__ if f"`{name}" not in page]
    assert missing == []
