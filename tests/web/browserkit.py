"""The kit of the browser tests of ``jackstalk web``: private real beanstalkd servers, the web
console as a subprocess (``python -m jackstalk web``, as an operator runs it), and a headless
Chromium driven by Selenium.

The browser is Debian's ``chromium`` with its ``chromium-driver``, named by path, so Selenium
Manager never downloads anything. Without them (or without Selenium) the browser tests are
skipped, except under CI (the environment variable ``CI`` set), where they fail: CI must run
them. Every wait is a ``WebDriverWait`` on something the page shows (``body[data-updates]``
growing, a row appearing, a text changing), bounded by :data:`TIME_LIMIT`; nothing sleeps.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import pytest

import jackstalk
from jackstalk.testing import BeanstalkdServer, beanstalkd_available, run_beanstalkd

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 800)
TIME_LIMIT = 30.0
"""Seconds any one wait may take before the test fails (a bound, not a timing assert)."""
INTERVAL = "0.2"
"""The console's refresh period in the tests (``--interval``)."""

T = TypeVar("T")


# --------------------------------------------------------------------- what is installed


def _missing() -> list[str]:
    missing = []
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (the test group installs it)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (Debian's chromium)")
    if not os.access(CHROMEDRIVER, os.X_OK):
        missing.append(f"{CHROMEDRIVER} (Debian's chromium-driver)")
    if not beanstalkd_available():
        missing.append("beanstalkd")
    return missing


MISSING = _missing()
ON_CI = bool(os.environ.get("CI"))

needs_browser = pytest.mark.skipif(
    bool(MISSING) and not ON_CI,
    reason="the browser tests need " + ", ".join(MISSING) + " (.ci/run installs them)",
)
"""Skip a browser test on a machine without the browser; under CI, run it (and fail)."""


def require_browser() -> None:
    """Fail (CI) or skip when something the browser tests need is missing."""
    if MISSING:
        message = "the browser tests need " + ", ".join(MISSING)
        if ON_CI:
            pytest.fail(message + ", and CI must run them")
        pytest.skip(message)


# --------------------------------------------------------------------- servers


def show(address: tuple[str, int] | str) -> str:
    """An address as ``--address`` takes it (and as the console names the server)."""
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


@dataclass
class Beanstalkd:
    """A private real beanstalkd that a test can stop: the process ends and the port is
    closed, so connecting is refused, as with a server that went away."""

    server: BeanstalkdServer
    listener: socket.socket

    @property
    def address(self) -> tuple[str, int] | str:
        return self.server.address

    @property
    def name(self) -> str:
        """The server as the console names it: ``127.0.0.1:PORT``."""
        return show(self.server.address)

    def client(self, **options: Any) -> jackstalk.Client:
        """A blocking client of this server (close it, or let :class:`Stack` close it)."""
        options.setdefault("timeout", TIME_LIMIT)
        return jackstalk.Client(self.server.address, **options)

    def stop(self) -> None:
        """Stop the server and close its port."""
        self.server.process.terminate()
        self.server.process.wait(timeout=TIME_LIMIT)
        self.listener.close()


@dataclass
class WebConsole:
    """A running ``jackstalk web``."""

    process: subprocess.Popen[str]
    url: str
    """``http://127.0.0.1:PORT/`` as the command printed it."""
    stderr_path: Path

    def page(self, path: str = "/") -> str:
        """The absolute URL of ``path``."""
        return urllib.parse.urljoin(self.url, path)

    def tube_page(self, tube: str) -> str:
        """The URL of a tube's page."""
        return self.page("/tubes/" + urllib.parse.quote(tube, safe=""))

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


_LISTENING = "jackstalk web listening on "


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Hand the command's stdout to the test line by line (and keep draining the pipe)."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def start_web(servers: list[Beanstalkd], *options: str, tmp_path: Path) -> Generator[WebConsole]:
    """Run ``python -m jackstalk web --address ... --listen 127.0.0.1:0`` until the generator
    is closed; yield once it printed where it listens."""
    command = [sys.executable, "-m", "jackstalk", "web"]
    for server in servers:
        command += ["--address", server.name]
    command += ["--listen", "127.0.0.1:0", "--interval", INTERVAL, *options]
    env = dict(os.environ)
    env.pop("BEANSTALKD_ADDRESS", None)
    env["PYTHONUNBUFFERED"] = "1"
    stderr_path = tmp_path / f"web-{time.monotonic_ns()}.stderr"
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(
        target=_read_lines, args=(process.stdout, lines), name="web-stdout", daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + TIME_LIMIT
        url = None
        seen: list[str] = []
        while url is None:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                pytest.fail(
                    f"`jackstalk web` printed no {_LISTENING!r} line in {TIME_LIMIT} s;"
                    f" stdout: {''.join(seen)!r}; stderr:\n{stderr_path.read_text()}"
                )
            if line is None:
                code = process.wait(timeout=TIME_LIMIT)
                pytest.fail(
                    f"`jackstalk web` exited with status {code} before listening;"
                    f" stdout: {''.join(seen)!r}; stderr:\n{stderr_path.read_text()}"
                )
            seen.append(line)
            if line.startswith(_LISTENING):
                url = line[len(_LISTENING) :].strip()
        yield WebConsole(process, url, stderr_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=TIME_LIMIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=TIME_LIMIT)
        process.stdout.close()


@dataclass
class Stack:
    """What a test runs: beanstalkd servers, web consoles and clients, all stopped at the
    test's end."""

    tmp_path: Path
    exits: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def beanstalkd(self) -> Beanstalkd:
        """A fresh real beanstalkd on a free loopback port."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.exits.callback(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        server = self.exits.enter_context(run_beanstalkd(listener=listener))
        return Beanstalkd(server, listener)

    def web(self, servers: list[Beanstalkd], *options: str) -> WebConsole:
        """``jackstalk web`` on ``servers``, with extra command-line ``options``."""
        running = start_web(servers, *options, tmp_path=self.tmp_path)
        console = next(running)
        self.exits.callback(running.close)
        return console

    def client(self, server: Beanstalkd, **options: Any) -> jackstalk.Client:
        """A blocking client of ``server``, closed at the end."""
        client = server.client(**options)
        self.exits.callback(client.close)
        return client


# --------------------------------------------------------------------- the browser


def chrome(tmp_path: Path) -> WebDriver:
    """A headless Chromium, 1280x800, with a fresh profile and no network of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "driver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(TIME_LIMIT)
    driver.set_script_timeout(TIME_LIMIT)
    # The page's viewport, not the window, is what a screenshot shows: make it 1280x800.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
    )
    return driver


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], T | None], what: str) -> T:
    """Wait (at most :data:`TIME_LIMIT`) until ``condition`` returns something true; fail
    with ``what`` and the page's live state otherwise."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        result: T = WebDriverWait(
            driver,
            TIME_LIMIT,
            poll_frequency=0.05,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(lambda d: condition(d) or False)
    except TimeoutException:
        pytest.fail(
            f"waited {TIME_LIMIT} s for {what}; page {driver.current_url},"
            f" data-updates={updates(driver)}"
        )
    return result


def updates(driver: WebDriver) -> int | None:
    """``body[data-updates]``: how many live updates the page applied (None: not there)."""
    value = driver.execute_script(
        "return document.body ? document.body.getAttribute('data-updates') : null;"
    )
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def wait_updates(driver: WebDriver, count: int = 2) -> int:
    """Wait until the page applied ``count`` more live updates than now; return the total."""
    start = updates(driver)
    assert start is not None, "the page has no body[data-updates]"

    def grown(d: WebDriver) -> int | None:
        now = updates(d)
        return now if now is not None and now >= start + count else None

    return wait_until(driver, grown, f"{count} more live updates (body[data-updates])")


def open_page(driver: WebDriver, url: str) -> None:
    """Load ``url`` and wait for its live data to have arrived once."""
    driver.get(url)
    wait_until(
        driver,
        lambda d: (updates(d) or 0) >= 1,
        f"the first live update of {url} (body[data-updates] >= 1)",
    )


def find(driver: WebDriver, selector: str) -> list[WebElement]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def text_of(driver: WebDriver, selector: str) -> str | None:
    """The text of the first element matching ``selector``, stripped (None: there is none).

    ``textContent``, not Selenium's visible text, so a cell out of view still reads; read
    in one script, so no element handle can go stale between finding and reading."""
    content = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
        selector,
    )
    return None if content is None else str(content).strip()


def wait_text(driver: WebDriver, selector: str, expected: str) -> str:
    """Wait until the element ``selector`` exists and its text is ``expected``."""

    def shows(d: WebDriver) -> str | None:
        return expected if text_of(d, selector) == expected else None

    try:
        return wait_until(driver, shows, f"{selector!r} to read {expected!r}")
    except pytest.fail.Exception as failure:
        pytest.fail(f"{failure}; it reads {text_of(driver, selector)!r}")


def tube_cell(tube: str, cell: str) -> str:
    """The selector of a cell of a tube's row on the overview."""
    return f"#tubes tr.tube[data-tube={json.dumps(tube)}] .{cell}"


def server_cell(server: str, cell: str) -> str:
    """The selector of a cell of a server's row on the overview."""
    return f"#servers tr.server[data-server={json.dumps(server)}] .{cell}"


def fill_form(driver: WebDriver, form: str, **fields: str) -> None:
    """Set fields of the form ``form`` (a selector): text inputs and textareas are cleared
    and typed into, selects are chosen by value."""
    from selenium.webdriver.support.ui import Select

    for name, value in fields.items():
        matches = find(driver, f"{form} [name={json.dumps(name)}]")
        assert matches, f"{form} has no field {name!r}"
        element = matches[0]
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)


def submit_form(driver: WebDriver, form: str, **fields: str) -> None:
    """Fill ``form`` (a selector) and submit it as a user does (its submit button), then
    wait for the page that answers it."""
    from selenium.common.exceptions import WebDriverException

    fill_form(driver, form, **fields)
    buttons = find(driver, f"{form} button, {form} input[type=submit]")
    assert buttons, f"{form} has no submit button"
    # A mark in the page's JavaScript world: the answering page is a new world without it.
    driver.execute_script("window.jackstalkOldPage = true;")
    buttons[-1].click()

    def answered(d: WebDriver) -> bool:
        try:
            return bool(
                d.execute_script(
                    "return window.jackstalkOldPage === undefined"
                    " && document.readyState === 'complete';"
                )
            )
        except WebDriverException:  # in the middle of the navigation
            return False

    wait_until(driver, answered, f"the page answering {form}")


def submit(driver: WebDriver, form: str, **fields: str) -> str:
    """Submit the action form ``form`` (a POST), and return the ``p.flash`` text of the page
    it redirects to (fail with its ``p.error`` text)."""
    submit_form(driver, form, **fields)
    flash = text_of(driver, "p.flash")
    assert flash is not None, f"submitting {form} failed: {text_of(driver, 'p.error')!r}"
    assert not find(driver, "p.error"), text_of(driver, "p.error")
    return flash


def fetch_post(driver: WebDriver, path: str, fields: dict[str, str]) -> int:
    """POST ``fields`` (form-encoded) to ``path`` from the page with ``fetch()``, with the
    page's cookies; return the final status (after redirects)."""
    status = driver.execute_async_script(
        """
        const [path, fields, done] = arguments;
        fetch(path, {
            method: "POST",
            body: new URLSearchParams(fields),
            credentials: "same-origin",
        }).then((r) => done(r.status), (e) => done(String(e)));
        """,
        path,
        fields,
    )
    assert isinstance(status, int), f"fetch failed: {status!r}"
    return status


def form_fields(driver: WebDriver, form: str) -> dict[str, str]:
    """The fields a form would submit (hidden ones included)."""
    fields = driver.execute_script(
        "const f = document.querySelector(arguments[0]);"
        "return f ? Object.fromEntries(new FormData(f).entries()) : null;",
        form,
    )
    assert isinstance(fields, dict), f"no form {form!r} on {driver.current_url}"
    return {str(k): str(v) for k, v in fields.items()}


def post_forms(driver: WebDriver) -> list[str]:
    """The ids (or actions) of the page's forms whose method is POST."""
    found = driver.execute_script(
        "return Array.from(document.forms)"
        ".filter((f) => f.method === 'post')"
        ".map((f) => f.id || f.getAttribute('action') || '?');"
    )
    assert isinstance(found, list)
    return [str(name) for name in found]


def http(
    url: str,
    *,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """A request outside the browser (urllib, no redirects followed): status and body."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    body = None if data is None else urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(url, data=body, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=TIME_LIMIT) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read().decode("utf-8", "replace")


def save_screenshot(driver: WebDriver, name: str) -> Path:
    """Write the viewport as ``docs/images/NAME`` when its bytes differ from the file's."""
    png = driver.get_screenshot_as_png()
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / name
    if not path.exists() or path.read_bytes() != png:
        path.write_bytes(png)
    return path


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
