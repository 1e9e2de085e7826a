"""Helpers for the web console's tests: the app in-process (Starlette's TestClient) against
real beanstalkd servers the test started, hostile servers, and the page scraping the tests
share. Loopback only; every wait is bounded by the poller's own long poll, never a sleep."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from starlette.testclient import TestClient

from jackstalk._app.web import WebConfig, create_app

Address = tuple[str, int] | str
WAIT = 30.0
"""Seconds a test waits for the next snapshot at most (a bound, not a timing assert)."""


def name_of(address: Address) -> str:
    """A server's name as the console shows it."""
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


@contextmanager
def console(addresses: list[Address], **options: Any) -> Iterator[TestClient]:
    """The console for ``addresses`` with its poller running (the app's lifespan)."""
    options.setdefault("interval", 0.05)
    options.setdefault("timeout", 2.0)
    app = create_app(WebConfig(addresses=addresses, **options))
    with TestClient(app, follow_redirects=False) as client:
        yield client


def snapshot_after(client: TestClient, seq: int | None = None) -> dict[str, Any]:
    """A snapshot taken entirely after this call (``seq`` None), or the first numbered
    above ``seq``."""
    if seq is None:
        seq = client.get("/api/snapshot").json()["seq"] + 1  # the one under way may be old
    response = client.get(f"/api/snapshot?after={seq}")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    assert data["seq"] > seq, "no new snapshot in time"
    return data


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def post(client: TestClient, path: str, **fields: str) -> Any:
    """Post an action the way the page's form does (with its CSRF field)."""
    page = client.get(path.rsplit("/", 1)[0])
    return client.post(path, data={"csrf": csrf_of(page.text), **fields})


@dataclass
class Element:
    """A parsed element: its tag, attributes and text (its own and its children's)."""

    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                found.append(child)
            found.extend(child.find_all(tag, cls))
        return found

    def find(self, tag: str | None = None, cls: str | None = None) -> Element:
        found = self.find_all(tag, cls)
        assert found, f"no <{tag} class={cls}>"
        return found[0]

    def by_id(self, ident: str) -> Element:
        for element in [self, *self.find_all()]:
            if element.attrs.get("id") == ident:
                return element
        raise AssertionError(f"no element #{ident}")

    def cell(self, cls: str) -> str:
        return self.find("td", cls).text.strip()


_VOID = {"meta", "link", "input", "br", "img", "hr"}


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {key: value or "" for key, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data


def parse(html: str) -> Element:
    """The element tree of a page (the text of each element includes its descendants')."""
    tree = _Tree()
    tree.feed(html)
    tree.close()
    return tree.root


class HostileServer:
    """A loopback listener that plays a broken beanstalkd: ``mode`` "silent" accepts and
    never answers, "garbage" answers every command with nonsense."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            if self.mode == "garbage":
                threading.Thread(target=self._garbage, args=(conn,), daemon=True).start()

    def _garbage(self, conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                conn.sendall(b"\x00\xffWHAT IS THIS 12 ?!\r\n<script>alert(1)</script>\r\n")
        except OSError:
            return

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
        except OSError:
            pass
        self.listener.close()
        for conn in self.connections:
            conn.close()
        self.thread.join(timeout=WAIT)


@contextmanager
def hostile(mode: str) -> Iterator[HostileServer]:
    """A :class:`HostileServer` for the block."""
    server = HostileServer(mode)
    try:
        yield server
    finally:
        server.close()
