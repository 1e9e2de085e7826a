"""Generate docs/api.md, the API reference, from the docstrings of every public name.

Run ``python docs/make_reference.py`` after changing a public docstring or signature;
``tests/test_reference.py`` fails while docs/api.md is out of date.
"""

from __future__ import annotations

import enum
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Any

import jackstalk

OUTPUT = Path(__file__).with_name("api.md")

SECTIONS: list[tuple[str, list[str]]] = [
    ("Clients", ["Client", "AsyncClient", "TrioClient", "Job", "AsyncJob", "BaseJob", "Worker"]),
    (
        "The sans-IO core",
        ["Connection", "ConnectionState", "ServerConnection", "Rejected", "NEED_DATA", "NeedData"],
    ),
    (
        "Typed results and options",
        ["ServerStats", "TubeStats", "JobStats", "Codec", "KEEP", "Keep"],
    ),
    ("Stats and lists", ["parse_stats", "parse_list", "format_dict", "format_list"]),
]


def _unquote(signature: str) -> str:
    """Show ``x: 'int'`` (postponed annotations) as ``x: int``."""
    signature = re.sub(r": '([^']*)'", r": \1", signature)
    return re.sub(r"-> '([^']*)'", r"-> \1", signature)


def _signature(obj: Any) -> str:
    try:
        return _unquote(str(inspect.signature(obj)))
    except (TypeError, ValueError):
        return ""


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def _public_members(cls: type) -> list[tuple[str, Any]]:
    members = []
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        value = inspect.getattr_static(cls, name)
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if callable(value) or isinstance(value, property):
            members.append((name, value))
    return members


def _member_signature(cls: type, name: str, value: Any) -> str:
    if isinstance(value, property):
        return name
    prefix = "async " if inspect.iscoroutinefunction(value) else ""
    params = list(inspect.signature(value).parameters.values())[1:]
    return _unquote(f"{prefix}{name}{inspect.signature(value).replace(parameters=params)}")


def _entry(name: str, obj: Any) -> list[str]:
    lines: list[str] = []
    if typing.is_typeddict(obj):
        lines += [f"### `{name}` (TypedDict)", "", _doc(obj) or "(no docstring)", ""]
        required = obj.__required_keys__
        for key, kind in obj.__annotations__.items():
            note = "" if key in required else " (may be missing)"
            lines.append(f"- `{key!r}`: `{getattr(kind, '__name__', kind)}`{note}")
        lines.append("")
    elif isinstance(obj, enum.Enum):
        lines += [f"### `{name}`", "", f"`{obj!r}`: {_doc(type(obj))}", ""]
    elif inspect.isclass(obj):
        bases = [base.__name__ for base in obj.__bases__ if base is not object]
        lines.append(f"### `{name}`" + (f" ({', '.join(bases)})" if bases else ""))
        if not issubclass(obj, BaseException | enum.Enum):
            init = _signature(obj)
            if init:
                lines += ["", f"```text\n{name}{init}\n```"]
        lines += ["", _doc(obj) or "(no docstring)", ""]
        for member, value in _public_members(obj):
            if issubclass(obj, BaseException | enum.Enum) or member in ("encode",):
                continue
            doc = _doc(value).split("\n\n")[0].replace("\n", " ")
            lines.append(f"- `{_member_signature(obj, member, value)}`: {doc}")
        lines.append("")
    elif callable(obj):
        lines += [f"### `{name}{_signature(obj)}`", "", _doc(obj) or "(no docstring)", ""]
    else:
        lines += [f"### `{name}`", "", f"`{obj!r}`", ""]
    return lines


def render() -> str:
    """The whole reference page."""
    listed = {name for _, names in SECTIONS for name in names}
    commands = [n for n in jackstalk.__all__ if _is(n, jackstalk.Command) and n != "Command"]
    events = [n for n in jackstalk.__all__ if _is(n, jackstalk.Event) and n != "Event"]
    errors = [n for n in jackstalk.__all__ if _is(n, BaseException)]
    sections = [
        *SECTIONS,
        ("Commands", ["Command", *commands]),
        ("Reply events", ["Event", "Closed", *events]),
        ("Errors", errors),
    ]
    listed |= {name for _, names in sections for name in names}
    rest = [n for n in jackstalk.__all__ if n not in listed]
    sections.append(("Other names", rest))
    out = [
        "# API reference",
        "",
        "Generated from the docstrings by `python docs/make_reference.py`; do not edit by hand.",
        "",
    ]
    for title, names in sections:
        out += [f"## {title}", ""]
        for name in names:
            out += _entry(name, getattr(jackstalk, name))
    return "\n".join(out).rstrip() + "\n"


def _is(name: str, base: type) -> bool:
    obj = getattr(jackstalk, name)
    return inspect.isclass(obj) and issubclass(obj, base)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        return 0 if OUTPUT.read_text(encoding="utf-8") == text else 1
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
