"""Run every Python example of README.md and docs/*.md against a real beanstalkd.

Each page is one test (its id is the page's path, such as ``docs/core.md``). Its fenced
Python blocks run in order in one namespace, so a block can use what an earlier block of the
same page defined. Before the first block the harness puts ``ADDRESS``, the address of a
fresh beanstalkd started for the page, into that namespace; pages under ``docs/`` say so in
their prose (``ADDRESS = ("127.0.0.1", 11300)``) before their first example. A page whose
examples use ``ADDRESSES`` (several servers, for ``jackstalk.Cluster``) also gets that: a
list of three addresses, ``ADDRESS`` and two more fresh servers.

Fence rules:

* `` ```python `` (or ``py``, ``python3``): executed. A block whose first line starts with
  ``>>>`` (or a `` ```pycon `` block) is a doctest session and is checked as one, in the
  same namespace.
* `` ```python no-run ``: shown but not executed (only compiled), for examples that never
  end, such as a worker's ``while True`` loop.
* any other language (``sh``, ``text`` ...): ignored.

A failing block is reported by page, line number and first line, with the traceback as the
page's own line numbers.
"""

from __future__ import annotations

import ast
import doctest
import gc
import io
import re
import sys
import threading
import traceback
import types
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.assertion.rewrite import rewrite_asserts

from jackstalk.testing import BeanstalkdServer, run_beanstalkd

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "pycon"})
FLAGS = frozenset({"no-run"})
ADDRESS_PROSE = 'ADDRESS = ("127.0.0.1", 11300)'
PAGE_TIME_LIMIT = 60.0
"""Seconds a page may run; past that the harness stops the page's server, so a block
blocked on it (a ``reserve()`` that no job will ever answer, say) fails instead of hanging."""

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


class PageError(Exception):
    """A page's Markdown breaks the rules this harness relies on."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    line: int
    """The page's line number of the block's first code line (1-based)."""
    language: str
    flags: frozenset[str]
    source: str

    @property
    def is_python(self) -> bool:
        return self.language in PYTHON_LANGUAGES

    @property
    def runs(self) -> bool:
        return self.is_python and "no-run" not in self.flags

    @property
    def is_doctest(self) -> bool:
        return self.language == "pycon" or self.source.lstrip().startswith(">>>")

    @property
    def first_line(self) -> str:
        for text in self.source.splitlines():
            if text.strip():
                return text.strip()
        return ""


@dataclass(frozen=True)
class Page:
    """A Markdown page split into its code blocks and its prose lines."""

    path: Path
    blocks: list[Block]
    prose: list[tuple[int, str]]
    """(line number, text) of every line outside a fence."""

    @property
    def name(self) -> str:
        return page_name(self.path)


def page_name(path: Path) -> str:
    """A page's path relative to the project: its test id and its name in messages."""
    return path.relative_to(ROOT).as_posix()


def parse_page(path: Path) -> Page:
    """Split a page into fenced blocks (CommonMark fences: ``` or ~~~, three or more, the
    closing fence at least as long as the opening one) and the prose around them."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            prose.append((index + 1, lines[index]))
            index += 1
            continue
        indent, fence, info = match["indent"], match["fence"], match["info"].strip()
        if fence[0] == "`" and "`" in info:
            # Inline code such as ```x``` at the start of a line, not a fence.
            prose.append((index + 1, lines[index]))
            index += 1
            continue
        start = index + 1
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = start
        while end < len(lines) and closing.match(lines[end]) is None:
            end += 1
        if end == len(lines):
            raise PageError(
                f"{page_name(path)}:{index + 1}: code fence {fence}{info} is never closed"
            )
        words = info.split()
        language = words[0].lower() if words else ""
        flags = frozenset(words[1:])
        if language in PYTHON_LANGUAGES and not flags <= FLAGS:
            unknown = ", ".join(sorted(flags - FLAGS))
            raise PageError(f"{page_name(path)}:{index + 1}: unknown flag(s) {unknown} on {info!r}")
        body = [_dedent(text, indent) for text in lines[start:end]]
        blocks.append(Block(start + 1, language, flags, "\n".join(body) + "\n"))
        index = end + 1
    return Page(path, blocks, prose)


def _dedent(text: str, indent: str) -> str:
    """Remove a fence's own indentation from a line of its block (a block inside a list)."""
    return text[len(indent) :] if text.startswith(indent) else text.lstrip(" \t")


# ---------------------------------------------------------------------------- running


class BlockFailed(Exception):
    """A block raised, or its doctest session did not match."""

    def __init__(self, report: str) -> None:
        super().__init__(report)
        self.report = report


def compile_block(page: Page, block: Block) -> types.CodeType:
    """Compile a block so that tracebacks carry the page's path and line numbers, with
    pytest's assertion rewriting so that a failing ``assert`` shows the values it saw."""
    source = "\n" * (block.line - 1) + block.source
    tree = ast.parse(source, str(page.path))
    rewrite_asserts(tree, source.encode("utf-8"), str(page.path))
    # dont_inherit: the examples run with the future features a user's script would have,
    # not with this module's ``from __future__ import annotations``.
    return compile(tree, str(page.path), "exec", dont_inherit=True)


def run_block(page: Page, block: Block, namespace: dict[str, object]) -> None:
    """Run one block in ``namespace`` (only compile it if it is marked ``no-run``)."""
    try:
        if block.is_doctest:
            run_doctest(page, block, namespace)
            return
        code = compile_block(page, block)
        if block.runs:
            exec(code, namespace)
    except BlockFailed:
        raise
    except SyntaxError as error:
        # Where in the page, not where in the harness.
        raise BlockFailed("".join(traceback.format_exception_only(error))) from None
    except Exception as error:
        # Drop this frame: the traceback starts in the block itself.
        tb = error.__traceback__.tb_next if error.__traceback__ is not None else None
        report = "".join(traceback.format_exception(type(error), error, tb))
        raise BlockFailed(report) from None


def run_doctest(page: Page, block: Block, namespace: dict[str, object]) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.source, namespace, page.name, str(page.path), block.line - 1)
    if not block.runs:
        return
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    runner.run(test, out=out.write, clear_globs=False)
    if runner.failures:
        raise BlockFailed(out.getvalue())


def start_watchdog(
    server: BeanstalkdServer, limit: float
) -> tuple[threading.Timer, threading.Event]:
    """After ``limit`` seconds, stop the page's server (and set the returned event)."""
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        server.process.terminate()

    timer = threading.Timer(limit, stop)
    timer.daemon = True
    timer.start()
    return timer, fired


def check_address_prose(page: Page) -> None:
    """A docs page that uses ``ADDRESS`` must say what it is before its first example."""
    runnable = [block for block in page.blocks if block.runs]
    if not any("ADDRESS" in block.source for block in runnable):
        return
    first = runnable[0].line
    said = [number for number, text in page.prose if ADDRESS_PROSE in text]
    if not said or said[0] > first:
        raise PageError(
            f"{page.name}: the prose must say, before the first example (line {first}),"
            f" that examples use {ADDRESS_PROSE}"
        )


def run_page(
    page: Page, address: tuple[str, int] | str, addresses: list[tuple[str, int] | str] | None = None
) -> str | None:
    """Run the page's blocks in order, in one fresh module namespace holding ``ADDRESS``
    (and ``ADDRESSES`` when given).

    Returns ``None`` when every block passed, else a report naming the first that failed.
    """
    module_name = "jackstalk_docs_" + re.sub(r"\W", "_", page.name)
    module = types.ModuleType(module_name)
    module.__file__ = str(page.path)
    namespace = module.__dict__
    namespace["ADDRESS"] = address
    if addresses is not None:
        namespace["ADDRESSES"] = addresses
    # Collect what earlier tests left behind first, so only this page's leaks count below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    # Registered so that classes defined in examples pickle and dataclasses resolve.
    sys.modules[module_name] = module
    failure: str | None = None
    try:
        for block in page.blocks:
            if not block.is_python:
                continue
            try:
                run_block(page, block, namespace)
            except BlockFailed as error:
                failure = (
                    f"{page.name}: the block at line {block.line} failed"
                    f" (first line: {block.first_line!r})\n\n{error.report}"
                )
                break
    finally:
        del sys.modules[module_name]
        # Free everything the examples made now, so that a client left open shows up here
        # as a ResourceWarning, in this page's test.
        with warnings.catch_warnings(record=True) as leaks:
            warnings.simplefilter("always", ResourceWarning)
            namespace.clear()
            gc.collect()
    # After a failure, open clients are expected (the block stopped half-way): not news.
    if failure is None and leaks:
        failure = (
            f"{page.name}: the examples left {len(leaks)} resource(s) open"
            f" (a client not closed?), the first: {leaks[0].message}"
        )
    return failure


@pytest.mark.parametrize("path", PAGES, ids=[page_name(path) for path in PAGES])
def test_page(path: Path, beanstalkd: BeanstalkdServer) -> None:
    """Every Python block of the page runs, in order, against the page's own beanstalkd."""
    problem: str | None = None
    try:
        page = parse_page(path)
        if page.name.startswith("docs/"):
            check_address_prose(page)
    except PageError as error:
        problem = str(error)
    if problem is None:
        timer, fired = start_watchdog(beanstalkd, PAGE_TIME_LIMIT)
        try:
            with ExitStack() as more:
                addresses = None
                if any("ADDRESSES" in block.source for block in page.blocks if block.runs):
                    extra = [more.enter_context(run_beanstalkd()) for _ in range(2)]
                    addresses = [beanstalkd.address, *(server.address for server in extra)]
                problem = run_page(page, beanstalkd.address, addresses)
        finally:
            timer.cancel()
        if problem is not None and fired.is_set():
            problem += (
                f"\n(the page ran past its {PAGE_TIME_LIMIT:g} s limit,"
                " so the harness stopped its server)"
            )
    if problem is not None:
        pytest.fail(problem, pytrace=False)
