"""The acceptance tests of ``jackstalk web`` (issue 22), in a real headless Chromium against
real beanstalkd: the overview lists the tubes and follows another client's puts without a
reload; kick, kick a job, delete, pause and put work from the tube page; bodies are text; a
POST without the CSRF token is refused; ``--read-only`` shows no action and refuses them; a
stopped server shows as down while the others still update; ``--token`` lets in only who
has it. The run also takes the screenshots of docs/web.md (docs/images/web-*.png).

The page structure the tests rely on is the contract of the app and its tests
(ids, classes and ``data-`` attributes): see the helpers in browserkit.py.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browserkit import (
    TIME_LIMIT,
    WINDOW,
    Stack,
    chrome,
    fetch_post,
    find,
    form_fields,
    http,
    needs_browser,
    open_page,
    png_size,
    post_forms,
    require_browser,
    save_screenshot,
    server_cell,
    submit,
    submit_form,
    text_of,
    tube_cell,
    wait_text,
    wait_until,
    wait_updates,
)

import jackstalk

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = needs_browser


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Servers, consoles and clients of the test, stopped at its end."""
    require_browser()
    kit = Stack(tmp_path)
    with kit.exits:
        yield kit


@pytest.fixture
def browser(stack: Stack, tmp_path: Path) -> Iterator[WebDriver]:
    """A fresh headless Chromium (closed before the stack's console and servers stop)."""
    driver = chrome(tmp_path)
    try:
        yield driver
    finally:
        driver.quit()


def bury(client: jackstalk.Client, tube: str, count: int) -> list[int]:
    """Put ``count`` jobs into ``tube`` and bury them all; return their ids."""
    ids = client.put_many([f"job {n}" for n in range(count)], tube=tube)
    client.watch(tube)
    client.ignore("default")
    for _ in ids:
        job = client.reserve(timeout=0)
        assert job is not None
        client.bury(job)
    return ids


# --------------------------------------------------------------------- the overview


def test_overview_lists_the_tubes(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    client = stack.client(server)
    client.put_many(["a", "b", "c"], tube="emails")
    client.put("later", delay=3600, tube="images")
    bury(client, "images", 2)
    console = stack.web([server])

    open_page(browser, console.url)
    wait_text(browser, server_cell(server.name, "state"), "up")
    assert text_of(browser, server_cell(server.name, "error")) == ""
    assert text_of(browser, server_cell(server.name, "version"))
    assert text_of(browser, server_cell(server.name, "current-jobs-ready")) == "3"
    assert text_of(browser, server_cell(server.name, "current-jobs-delayed")) == "1"
    assert text_of(browser, server_cell(server.name, "current-jobs-buried")) == "2"
    assert find(browser, "#servers tr.total")

    tubes = {row.get_attribute("data-tube") for row in find(browser, "#tubes tr.tube")}
    assert {"default", "emails", "images"} <= tubes
    assert text_of(browser, tube_cell("emails", "current-jobs-ready")) == "3"
    assert text_of(browser, tube_cell("images", "current-jobs-delayed")) == "1"
    assert text_of(browser, tube_cell("images", "current-jobs-buried")) == "2"
    assert text_of(browser, tube_cell("images", "current-jobs-ready")) == "0"
    links = find(browser, tube_cell("emails", "name") + " a")
    assert links, "the tube's name is not a link"
    assert links[0].get_attribute("href") == console.tube_page("emails")
    assert find(browser, tube_cell("emails", "chart") + " svg"), "no chart for the tube"
    for cell in (
        "current-jobs-reserved",
        "current-waiting",
        "pause-time-left",
        "rate-puts",
        "rate-reserves",
        "rate-deletes",
    ):
        assert find(browser, tube_cell("emails", cell)), f"the tube row has no {cell} cell"
    for cell in ("uptime", "current-connections", "current-jobs-reserved"):
        assert text_of(browser, server_cell(server.name, cell)), f"the server's {cell} is empty"


def test_a_put_by_another_client_shows_up_without_a_reload(
    stack: Stack, browser: WebDriver
) -> None:
    server = stack.beanstalkd()
    console = stack.web([server])
    open_page(browser, console.url)
    # A mark in the page's JavaScript world: a reload would erase it.
    browser.execute_script("window.jackstalkTestMark = 'still here';")
    assert not find(browser, '#tubes tr.tube[data-tube="late"]')

    client = stack.client(server)
    client.put("first", tube="late")
    wait_text(browser, tube_cell("late", "current-jobs-ready"), "1")
    client.put_many(["second", "third"], tube="late")
    wait_text(browser, tube_cell("late", "current-jobs-ready"), "3")
    client.watch("late")
    client.ignore("default")
    job = client.reserve(timeout=0)
    assert job is not None
    wait_text(browser, tube_cell("late", "current-jobs-reserved"), "1")
    wait_text(browser, tube_cell("late", "current-jobs-ready"), "2")
    wait_text(browser, server_cell(server.name, "current-jobs-reserved"), "1")

    assert browser.execute_script("return window.jackstalkTestMark;") == "still here"


def test_tube_names_that_need_quoting(stack: Stack, browser: WebDriver) -> None:
    """Names with the characters beanstalkd allows beyond letters and digits (``/``, ``+``,
    ``;``, ``$``, parentheses): a row rendered by the server and a row the live data adds
    both link to the tube's page, whose actions work."""
    server = stack.beanstalkd()
    client = stack.client(server)
    early, late = "jobs/urgent+1", "a(b);$c.d-e_f"
    client.put("early", tube=early)
    console = stack.web([server])

    open_page(browser, console.url)
    wait_text(browser, tube_cell(early, "current-jobs-ready"), "1")
    client.put("late", tube=late)
    wait_text(browser, tube_cell(late, "current-jobs-ready"), "1")

    for name in (early, late):
        open_page(browser, console.url)
        link = find(browser, tube_cell(name, "name") + " a")[0]
        assert link.get_attribute("textContent") == name
        link.click()
        wait_text(browser, "h1.tube-name", name)
        assert urllib.parse.unquote(urllib.parse.urlsplit(browser.current_url).path) == (
            "/tubes/" + name
        )
        submit(browser, "form#put", body=f"put into {name}", server="")
        assert client.stats_tube(name)["current-jobs-ready"] == 2


# --------------------------------------------------------------------- the actions


def test_kick_n_from_the_page(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    client = stack.client(server)
    bury(client, "work", 5)
    console = stack.web([server])

    open_page(browser, console.tube_page("work"))
    assert text_of(browser, "h1.tube-name") == "work"
    assert find(browser, "section#buried div.job")
    submit(browser, "form#kick", bound="3", server="")

    stats = client.stats_tube("work")
    assert (stats["current-jobs-buried"], stats["current-jobs-ready"]) == (2, 3)


def test_kick_a_job_from_the_page(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    client = stack.client(server)
    first, second = bury(client, "work", 2)
    console = stack.web([server])

    open_page(browser, console.tube_page("work"))
    submit(browser, "form#kick-job", id=str(second), server=server.name)

    assert client.stats_job(second)["state"] == "ready"
    assert client.stats_job(first)["state"] == "buried"


def test_delete_a_job_from_the_page(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    client = stack.client(server)
    first, second = client.put_many(["one", "two"], tube="work")
    console = stack.web([server])

    open_page(browser, console.tube_page("work"))
    shown = find(browser, f'section#ready div.job[data-id="{first}"]')
    assert shown, "the next ready job is not shown"
    assert shown[0].get_attribute("data-server") == server.name
    submit(browser, "form#delete-job", id=str(first), server=server.name)

    assert client.peek(first) is None
    assert client.peek(second) is not None
    # The page the POST redirected to shows the next ready job now.
    assert find(browser, f'section#ready div.job[data-id="{second}"]')


def test_pause_from_the_page(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    client = stack.client(server)
    client.put("waits", tube="work")
    console = stack.web([server])

    open_page(browser, console.tube_page("work"))
    submit(browser, "form#pause", seconds="120", server="")

    stats = client.stats_tube("work")
    assert stats["pause"] == 120
    assert stats["pause-time-left"] > 0


def test_put_from_the_page(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    console = stack.web([server])
    client = stack.client(server)
    client.put("already there", tube="work")

    open_page(browser, console.tube_page("work"))
    fields = form_fields(browser, "form#put")
    assert (fields.get("priority"), fields.get("delay"), fields.get("ttr")) == ("1024", "0", "60")
    body = 'from the page: {"n": 1} <b>'
    submit(browser, "form#put", body=body, priority="7", delay="0", ttr="90", server="")

    client.watch("work")
    client.ignore("default")
    job = client.reserve(timeout=0)  # priority 7 comes before the 1024 already there
    assert job is not None
    assert job.body == body
    stats = client.stats_job(job)
    assert (stats["tube"], stats["pri"], stats["ttr"]) == ("work", 7, 90)


# --------------------------------------------------------------------- bodies


def test_a_script_body_is_shown_as_text(stack: Stack, browser: WebDriver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    server = stack.beanstalkd()
    client = stack.client(server)
    body = "<script>alert(1)</script>"
    client.put(body, tube="xss")
    console = stack.web([server])

    open_page(browser, console.tube_page("xss"))
    shown = find(browser, "section#ready pre.body")
    assert shown, "the ready job's body is not shown"
    assert shown[0].get_attribute("textContent") == body
    assert not find(browser, "pre.body script, pre.body *")
    wait_updates(browser, 2)  # give a script the time of two live updates to run
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018 (raises when there is none)


def test_bodies_json_binary_and_large(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    client = stack.client(server)
    document = {"to": "ada@example.com", "tags": ["a", "b"], "n": 1}
    client.put(json.dumps(document, separators=(",", ":")), tube="json")
    client.put(b"\x00\x01\xfe\xff", tube="binary")
    client.put("x" * 5000, tube="large")
    console = stack.web([server])

    open_page(browser, console.tube_page("json"))
    text = find(browser, "section#ready pre.body")[0].get_attribute("textContent") or ""
    assert json.loads(text) == document
    assert "\n" in text.strip(), f"JSON is not pretty-printed: {text!r}"

    open_page(browser, console.tube_page("binary"))
    text = find(browser, "section#ready pre.body")[0].get_attribute("textContent") or ""
    assert "0001feff" in "".join(text.split()).lower(), f"binary is not hex: {text!r}"

    job = find(browser, "section#ready div.job")[0]
    assert job.get_attribute("data-server") == server.name
    assert text_of(browser, "section#ready div.job .job-id") == job.get_attribute("data-id")
    assert "4" in (text_of(browser, "section#ready div.job .job-size") or "")

    open_page(browser, console.tube_page("large"))
    assert "5000" in (text_of(browser, "section#ready .job-size") or "")
    text = find(browser, "section#ready pre.body")[0].get_attribute("textContent") or ""
    assert len(text) <= 4096
    assert find(browser, "section#ready span.cut"), "the cut is not noted"
    assert find(browser, "section#delayed p.empty")
    assert find(browser, "section#buried p.empty")


def test_stats_job_by_id(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    client = stack.client(server)
    job_id = client.put("look at me", priority=5, tube="work")
    console = stack.web([server])

    open_page(browser, console.tube_page("work"))
    submit_form(browser, "form#stats-job", id=str(job_id), server=server.name)
    assert find(browser, "table#job-stats"), text_of(browser, "p.error")
    table = find(browser, "table#job-stats")[0].get_attribute("textContent") or ""
    assert "pri" in table
    assert "5" in table


# --------------------------------------------------------------------- safety


def test_a_post_without_the_csrf_token_is_refused(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    client = stack.client(server)
    bury(client, "work", 3)
    console = stack.web([server])

    open_page(browser, console.tube_page("work"))
    fields = form_fields(browser, "form#kick")
    assert fields.get("csrf"), "form#kick has no csrf field"
    action = find(browser, "form#kick")[0].get_attribute("action") or ""
    assert action.endswith("/tubes/work/kick")
    kick = {"bound": "1", "server": ""}

    # From the page itself (its cookies sent), without the field, then with a wrong one.
    assert fetch_post(browser, action, kick) == 403
    assert fetch_post(browser, action, {**kick, "csrf": "not-the-token"}) == 403
    # Outside the browser, with the browser's cookies but without the field.
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
    status, _ = http(action, data=kick, headers={"Cookie": cookies})
    assert status == 403
    # With the field but without the cookie.
    status, _ = http(action, data={**kick, "csrf": fields["csrf"]})
    assert status == 403
    assert client.stats_tube("work")["current-jobs-buried"] == 3

    # The right cookie and field, but posted from another site's page.
    status, _ = http(
        action,
        data={**kick, "csrf": fields["csrf"]},
        headers={"Cookie": cookies, "Origin": "http://attacker.example"},
    )
    assert status == 403
    assert client.stats_tube("work")["current-jobs-buried"] == 3
    csrf_cookies = [c for c in browser.get_cookies() if c["name"] == "jackstalk_csrf"]
    assert csrf_cookies, "no jackstalk_csrf cookie"
    assert csrf_cookies[0].get("sameSite") == "Strict"

    # The same POSTs with the page's own token are done: the refusals were the token's.
    status, _ = http(action, data={**kick, "csrf": fields["csrf"]}, headers={"Cookie": cookies})
    assert status == 303
    assert client.stats_tube("work")["current-jobs-buried"] == 2
    assert fetch_post(browser, action, {**fields, "bound": "1", "server": ""}) == 200
    assert client.stats_tube("work")["current-jobs-buried"] == 1


def test_read_only_shows_no_action_and_refuses_them(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    client = stack.client(server)
    bury(client, "work", 2)
    console = stack.web([server], "--read-only")

    open_page(browser, console.url)
    assert post_forms(browser) == []
    assert find(browser, '#tubes tr.tube[data-tube="work"]')
    open_page(browser, console.tube_page("work"))
    assert find(browser, "section#buried div.job"), "the read-only page shows no jobs"
    assert post_forms(browser) == []
    assert not find(browser, "form[method=post]")

    for action in ("kick", "kick-job", "delete", "pause", "put"):
        url = console.page(f"/tubes/work/{action}")
        data = {"bound": "5", "id": "1", "seconds": "60", "body": "x", "server": ""}
        assert fetch_post(browser, url, data) == 403, action
        status, _ = http(url, data=data)
        assert status == 403, action
    stats = client.stats_tube("work")
    assert (stats["current-jobs-buried"], stats["pause"]) == (2, 0)
    assert client.stats_tube("work")["total-jobs"] == 2


def test_a_stopped_server_shows_as_down_while_the_other_updates(
    stack: Stack, browser: WebDriver
) -> None:
    alive, stopped = stack.beanstalkd(), stack.beanstalkd()
    alive_client, stopped_client = stack.client(alive), stack.client(stopped)
    alive_client.put_many(["a1", "a2"], tube="shared")
    stopped_client.put_many(["b1", "b2", "b3"], tube="shared")
    stopped_client.close()
    console = stack.web([alive, stopped])

    open_page(browser, console.url)
    wait_text(browser, server_cell(alive.name, "state"), "up")
    wait_text(browser, server_cell(stopped.name, "state"), "up")
    wait_text(browser, tube_cell("shared", "current-jobs-ready"), "5")

    stopped.stop()
    wait_text(browser, server_cell(stopped.name, "state"), "down")
    wait_until(
        browser,
        lambda d: text_of(d, server_cell(stopped.name, "error")),
        "a reason in the down server's error cell",
    )
    assert text_of(browser, server_cell(alive.name, "state")) == "up"
    assert text_of(browser, server_cell(alive.name, "error")) == ""

    # The page keeps updating, and the live server's counts follow.
    wait_updates(browser, 3)
    before = text_of(browser, tube_cell("shared", "current-jobs-ready"))
    assert before is not None
    assert before.isdigit()
    alive_client.put("a3", tube="shared")
    wait_text(browser, server_cell(alive.name, "current-jobs-ready"), "3")
    wait_text(browser, tube_cell("shared", "current-jobs-ready"), str(int(before) + 1))
    wait_updates(browser, 2)
    assert text_of(browser, server_cell(stopped.name, "state")) == "down"

    # The tube's page still answers, with the live server's next job.
    open_page(browser, console.tube_page("shared"))
    assert text_of(browser, "h1.tube-name") == "shared"
    shown = find(browser, "section#ready div.job")
    assert [job.get_attribute("data-server") for job in shown] == [alive.name]


def test_a_token_lets_in_only_who_has_it(stack: Stack, browser: WebDriver) -> None:
    server = stack.beanstalkd()
    stack.client(server).put("secret job", tube="work")
    console = stack.web([server], "--token", "s3cret-token")

    assert http(console.url)[0] == 401
    assert http(console.url, headers={"Authorization": "Bearer wrong"})[0] == 401
    status, page = http(console.url, headers={"Authorization": "Bearer s3cret-token"})
    assert status == 200
    assert 'id="servers"' in page or "id=servers" in page
    assert http(console.tube_page("work"))[0] == 401

    # A browser without the token sees no console; with ?token= it is let in, and the
    # address bar loses the token.
    browser.get(console.url)
    assert not find(browser, "#servers")
    browser.get(console.url + "?token=wrong")
    assert not find(browser, "#servers")
    open_page(browser, console.url + "?token=s3cret-token")
    assert "token" not in browser.current_url
    assert find(browser, "#servers")
    names = {c["name"] for c in browser.get_cookies()}
    assert "jackstalk_token" in names
    # The cookie carries the visit on, to the tube page and to the live data.
    open_page(browser, console.tube_page("work"))
    assert text_of(browser, "h1.tube-name") == "work"
    wait_updates(browser, 2)


# --------------------------------------------------------------------- the screenshots


def test_screenshots_for_the_docs(stack: Stack, browser: WebDriver) -> None:
    """docs/images/web-overview.png and web-tube.png, from a realistic state: two servers,
    a few tubes with jobs in each state, and traffic over a few updates for the charts."""
    first, second = stack.beanstalkd(), stack.beanstalkd()
    producers = [stack.client(first), stack.client(second)]
    workers = [stack.client(first), stack.client(second)]
    holders = [stack.client(first), stack.client(second)]  # keep jobs reserved
    tubes = ("emails", "images", "reports")
    for n, client in enumerate(producers):
        for tube in tubes:
            bodies = [
                json.dumps({"to": f"user{i}@example.com", "template": "welcome", "attempt": 1})
                if tube == "emails"
                else f"{tube}/{n}/{i}.png"
                for i in range(8 + 5 * n)
            ]
            client.put_many(bodies, tube=tube)
            client.put_many(bodies[:3], delay=3600, tube=tube)
        bury(workers[n], "images", 3 + n)
        holders[n].watch("emails")
        holders[n].watch("reports")
        for _ in range(2 + n):
            assert holders[n].reserve(timeout=0) is not None
        holders[n].pause_tube("reports", 600)
    for worker in workers:
        for tube in tubes:
            worker.watch(tube)
    console = stack.web([first, second])
    open_page(browser, console.url)
    wait_text(browser, server_cell(second.name, "state"), "up")

    # Traffic in the background, varying from one moment to the next, so the rates are not
    # zero and the charts draw lines; the screenshot is taken while it flows.
    stop = threading.Event()
    failures: list[BaseException] = []

    def traffic(producer: jackstalk.Client, worker: jackstalk.Client, seed: int) -> None:
        try:
            step = seed
            while not stop.is_set():
                step += 1
                count = (step * 7) % 11 + 1
                producer.put_many(
                    [json.dumps({"to": f"user{step}-{i}@example.com"}) for i in range(count)],
                    tube="emails",
                )
                images = [f"images/{step}/{i}.png" for i in range(count // 2 + 1)]
                producer.put_many(images, tube="images")
                for _ in range((step * 5) % 9):
                    job = worker.reserve(timeout=0)
                    if job is None:
                        break
                    worker.delete(job)
                stop.wait(0.03)  # a pace for the traffic, not a synchronisation
        except BaseException as failure:
            failures.append(failure)

    threads = [
        threading.Thread(target=traffic, args=(producers[n], workers[n], n * 3), daemon=True)
        for n in range(2)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_updates(browser, 20)
        overview = save_screenshot(browser, "web-overview.png")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=TIME_LIMIT)
    assert not failures, failures
    assert png_size(overview) == WINDOW

    open_page(browser, console.tube_page("emails"))
    tube_image = save_screenshot(browser, "web-tube.png")
    assert png_size(tube_image) == WINDOW
