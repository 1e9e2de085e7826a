"""The package's plan holds: layers import only downwards, no module cycle, no code built from
strings, and the generated client methods match the operations they are written from.

The imports are read from the source (module level and inside functions; only
``if TYPE_CHECKING:`` blocks are left out, as they never run), so the check sees what runs.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from jackstalk._api import generate
from jackstalk._api import replies as r
from jackstalk._api.operations import Batch, Call
from jackstalk._protocol import commands as c

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "jackstalk"
TRANSPORTS = ROOT / "transports"

LAYERS = {
    "jackstalk._protocol": 1,
    "jackstalk._api": 2,
    "jackstalk._engine": 2,
    "jackstalk.transports": 3,
    "jackstalk._app": 4,
    "jackstalk.testing": 4,
    "jackstalk.pytest_plugin": 5,
}
"""Each layer's floor: a module may import its own layer and those on lower floors."""

APART = {"jackstalk._api", "jackstalk._engine"}
"""Layers on one floor that must not import each other: the clients and the server's engine
share only the protocol core."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    for path in sorted(TRANSPORTS.glob("*.py")):
        stem = path.stem
        found["jackstalk.transports" + ("" if stem == "__init__" else f".{stem}")] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> set[str]:
    """The jackstalk modules ``name`` imports when it runs (TYPE_CHECKING blocks excepted)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int | None:
    for prefix, floor in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return floor
    return None


def _top(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_walk_sees_the_package() -> None:
    # A walk that found nothing would pass every check below.
    assert "jackstalk._protocol.connection" in GRAPH
    assert "jackstalk._api.operations" in GRAPH["jackstalk._api.sync_methods"]
    assert "jackstalk._api.sync_methods" in GRAPH["jackstalk.transports.blocking"]
    # Imports inside functions count: the worker builds its clients on demand.
    assert "jackstalk.transports.blocking" in GRAPH["jackstalk._app.worker"]


def test_no_import_cycle() -> None:
    done: set[str] = set()
    path: list[str] = []

    def walk(module: str) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        path.append(module)
        for imported in sorted(GRAPH[module]):
            walk(imported)
        path.pop()
        done.add(module)

    for module in sorted(GRAPH):
        walk(module)


def test_layers_import_only_downwards() -> None:
    wrong = []
    for module, imported in sorted(GRAPH.items()):
        floor = _layer(module)
        if floor is None:
            continue  # the package's face and `python -m jackstalk`: above every layer
        for target in sorted(imported):
            target_floor = _layer(target)
            if target_floor is None or target_floor > floor:
                wrong.append(f"{module} -> {target}")
            elif _top(module) != _top(target) and {_top(module), _top(target)} <= APART:
                wrong.append(f"{module} -> {target} (a neighbouring layer)")
    assert wrong == []


def test_the_core_imports_no_io_module() -> None:
    banned = {"socket", "asyncio", "threading", "trio", "ssl", "selectors", "subprocess"}
    for module, path in MODULES.items():
        if not module.startswith("jackstalk._protocol"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned, (module, name)


def test_no_code_is_built_from_strings() -> None:
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"exec", "eval", "compile"}, (module, node.lineno)


@pytest.mark.parametrize("kind", generate.KINDS, ids=lambda kind: kind.filename)
def test_generated_methods_are_current(kind: generate.Kind) -> None:
    written = (PACKAGE / "_api" / kind.filename).read_text(encoding="utf-8")
    assert written == generate.render(kind), f"{kind.filename} is stale: run `nox -s generate`"


def test_generated_methods_are_marked_and_complete() -> None:
    from jackstalk._api import operations

    for kind in generate.KINDS:
        text = (PACKAGE / "_api" / kind.filename).read_text(encoding="utf-8")
        assert text.startswith("# Generated by "), kind.filename
        tree = ast.parse(text)
        (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef)]
        methods = [n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        defined = [n.name for n in methods if not n.decorator_list]  # overload stubs aside
        assert defined[2:] == [op.__name__ for op in operations.OPERATIONS]


def test_overloads_are_written_into_both_modules_with_the_kinds_job_class() -> None:
    # operations.py declares reserve's overloads once; each generated module carries them,
    # BaseJob renamed to its own job class, right before the method itself.
    for kind in generate.KINDS:
        text = (PACKAGE / "_api" / kind.filename).read_text(encoding="utf-8")
        (cls,) = [node for node in ast.parse(text).body if isinstance(node, ast.ClassDef)]
        methods = [n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        stubs = [n for n in methods if n.decorator_list]
        assert [n.name for n in stubs] == ["reserve", "reserve"], kind.filename
        assert [ast.unparse(n.returns) for n in stubs if n.returns] == [
            kind.job_class,
            f"{kind.job_class} | None",
        ]
        assert all(ast.unparse(n.decorator_list[0]) == "overload" for n in stubs)
        after = methods[methods.index(stubs[-1]) + 1]
        assert after.name == "reserve"
        assert not after.decorator_list
        assert "BaseJob" not in text


def test_the_generator_writes_and_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate, "HERE", tmp_path)
    assert generate.main(["--check"]) == 1  # nothing written yet: stale
    assert generate.main([]) == 0  # writes them
    for kind in generate.KINDS:
        assert (tmp_path / kind.filename).read_text(encoding="utf-8") == generate.render(kind)
    assert generate.main(["--check"]) == 0
    stale = tmp_path / generate.KINDS[1].filename
    stale.write_text(stale.read_text(encoding="utf-8") + "# edited by hand\n", encoding="utf-8")
    assert generate.main(["--check"]) == 1


def test_tracebacks_show_the_methods_source() -> None:
    import traceback

    import jackstalk

    client = jackstalk.Client(encoding=None)
    try:
        client.put("not bytes")
    except TypeError as error:
        frames = traceback.extract_tb(error.__traceback__)
    else:  # pragma: no cover - the put must refuse a str with encoding=None
        pytest.fail("put accepted a str with encoding=None")
    put = frames[1]  # (frames[0] is this test's call)
    assert put.filename.endswith("sync_methods.py")
    assert put.name == "put"
    assert put.line
    assert "self._encode(body)" in put.line


def test_the_tests_run_on_every_python_the_package_says_it_supports() -> None:
    # noxfile.py's PYTHONS (one tests session each) and pyproject.toml's classifiers agree.
    import tomllib

    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    (pythons,) = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [ast.unparse(target) for target in node.targets] == ["PYTHONS"]
    ]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    prefix = "Programming Language :: Python :: "
    listed = [
        c.removeprefix(prefix) for c in project["classifiers"] if c[len(prefix) :][:2] == "3."
    ]
    assert listed == pythons
    assert project["requires-python"] == f">={pythons[0]}"


# The generator refuses operations it could not write out faithfully. (These functions are
# read as source by the generator, never called.)


def _op_with_args(client: Any, *bodies: bytes) -> Call[int]:
    return c.Put(bodies[0]), r.inserted


def _op_returning_a_command(client: Any) -> Call[int]:
    return c.Stats()  # type: ignore[return-value]


def _op_with_an_unnamed_conversion(client: Any) -> Call[int]:
    return c.Stats(), lambda client, event: 0


def _op_with_a_bad_result(client: Any) -> int:
    return c.Stats(), r.stats  # type: ignore[return-value]


def _op_mixing_results(client: Any, many: bool) -> Call[int] | Batch[str]:
    if many:
        return [c.Stats()], r.put_many_into  # type: ignore[return-value]
    return c.Stats(), r.inserted


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (_op_with_args, "only plain parameters"),
        (_op_returning_a_command, "returns \\(command, conversion\\)"),
        (_op_with_an_unnamed_conversion, "named as r.<name>"),
        (_op_with_a_bad_result, "must return Call"),
        (_op_mixing_results, "the same type"),
    ],
)
def test_the_generator_refuses_what_it_cannot_write_out(op: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate._method(generate.KINDS[0], op)


def test_an_import_name_with_two_meanings_is_refused() -> None:
    from jackstalk._api import operations, replies

    imports = generate._Imports()
    imports.add("stats", operations)  # the operation of that name
    with pytest.raises(ValueError, match="means two things"):
        imports.add("stats", replies)  # the conversion of that name
