"""The tube page and its actions against real beanstalkd: peeks, stats-job, kick, kick-job,
delete, pause and put; CSRF and read-only refusals; escaping of bodies."""

from __future__ import annotations

from contextlib import ExitStack
from urllib.parse import unquote

import pytest
from webkit import console, csrf_of, name_of, parse, post

import jackstalk
from jackstalk.testing import BeanstalkdServer, run_beanstalkd


def flash_of(web: object, response: object) -> tuple[str, str]:
    """Follow an action's 303 and return the page's (class, text) message."""
    assert response.status_code == 303  # type: ignore[attr-defined]
    page = web.get(response.headers["location"])  # type: ignore[attr-defined]
    document = parse(page.text)
    for cls in ("flash", "error"):
        found = document.find_all("p", cls)
        if found:
            return cls, found[0].text.strip()
    raise AssertionError("no message on the page")


def test_peeks_show_each_state_and_escape_bodies(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address, encoding=None) as c:
        ready = c.put(b"<script>alert(1)</script>", tube="work")
        delayed = c.put(b'{"a": [1, 2], "b": "<i>"}', tube="work", delay=300)
        c.put(b"\x00\x01\xfe\xff binary", tube="work")
        c.use("work")
        job = c.reserve_job(c.put(b"bury me", tube="work"))
        job.bury()
    with console([beanstalkd.address]) as web:
        page = web.get("/tubes/work")
        assert page.status_code == 200
        assert "<script>alert(1)" not in page.text
        document = parse(page.text)
        assert document.find("h1", "tube-name").text == "work"
        ready_job = document.by_id("ready").find("div", "job")
        assert ready_job.attrs == {
            "class": "job",
            "data-server": name_of(beanstalkd.address),
            "data-id": str(ready),
        }
        assert ready_job.find("pre", "body").text == "<script>alert(1)</script>"
        assert ready_job.find("span", "job-size").text == "25"
        delayed_job = document.by_id("delayed").find("div", "job")
        assert delayed_job.attrs["data-id"] == str(delayed)
        assert (
            delayed_job.find("pre", "body").text
            == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": "<i>"\n}'
        )
        buried_job = document.by_id("buried").find("div", "job")
        assert buried_job.find("pre", "body").text == "bury me"
        assert "cut" not in {span.classes.pop() for span in ready_job.find_all("span")}


def test_empty_states_binary_and_cut_bodies(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address, encoding=None) as c:
        c.put(bytes(range(256)) * 20, tube="big")
    with console([beanstalkd.address]) as web:
        document = parse(web.get("/tubes/big").text)
        job = document.by_id("ready").find("div", "job")
        assert job.find("span", "job-size").text == "5120"
        job.find("span", "cut")  # (find fails when it is missing)
        body = job.find("pre", "body").text
        assert body.startswith("00000000  00 01 02 03")
        assert len(body.splitlines()) == 4096 // 16
        for state in ("delayed", "buried"):
            document.by_id(state).find("p", "empty")  # (find fails when it is missing)
        empty = parse(web.get("/tubes/nothing-here").text)
        empty.by_id("ready").find("p", "empty")  # (find fails when it is missing)


def test_stats_job_form(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address) as c:
        job_id = c.put(b"x", tube="work")
    server = name_of(beanstalkd.address)
    with console([beanstalkd.address]) as web:
        document = parse(web.get("/tubes/work").text)
        form = document.by_id("stats-job")
        assert form.attrs["method"] == "get"
        assert {i.attrs["name"] for i in form.find_all("input")} == {"id"}
        assert form.find("select").attrs["name"] == "server"
        found = parse(web.get("/tubes/work", params={"id": job_id, "server": server}).text)
        rows = {
            tr.find("th").text: tr.find("td").text for tr in found.by_id("job-stats").find_all("tr")
        }
        assert rows["id"] == str(job_id)
        assert rows["tube"] == "work"
        assert rows["state"] == "ready"
        missing = parse(web.get("/tubes/work", params={"id": "999", "server": server}).text)
        assert "not found" in missing.find("p", "error").text
        bad = parse(web.get("/tubes/work", params={"id": "x", "server": server}).text)
        assert "job id" in bad.find("p", "error").text
        unknown = parse(web.get("/tubes/work", params={"id": "1", "server": "nope:1"}).text)
        assert "unknown server" in unknown.find("p", "error").text


def test_forms_are_there_with_defaults(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address]) as web:
        document = parse(web.get("/tubes/a%2Fb").text)
        assert document.find("h1", "tube-name").text == "a/b"
        actions = {
            "kick": {"bound", "server"},
            "kick-job": {"id", "server"},
            "delete-job": {"id", "server"},
            "pause": {"seconds", "server"},
            "put": {"body", "priority", "delay", "ttr", "server"},
        }
        targets = {"delete-job": "delete"}
        for form_id, fields in actions.items():
            form = document.by_id(form_id)
            assert form.attrs["method"] == "post"
            assert form.attrs["action"] == f"/tubes/a%2Fb/{targets.get(form_id, form_id)}"
            names = {e.attrs["name"] for e in form.find_all() if "name" in e.attrs}
            assert names == fields | {"csrf"}
        put = {
            e.attrs["name"]: e.attrs.get("value") for e in document.by_id("put").find_all("input")
        }
        assert (put["priority"], put["delay"], put["ttr"]) == ("1024", "0", "60")
        spread = document.by_id("put").find("select").find_all("option")
        assert spread[0].attrs["value"] == ""


def test_put_kick_delete_pause_and_kick_job(beanstalkd: BeanstalkdServer) -> None:
    server = name_of(beanstalkd.address)
    with console([beanstalkd.address]) as web, jackstalk.Client(beanstalkd.address) as c:
        answer = post(
            web,
            "/tubes/work/put",
            body="hello\r\nworld",
            priority="5",
            delay="0",
            ttr="30",
            server="",
        )
        kind, text = flash_of(web, answer)
        assert kind == "flash"
        assert text.startswith("put job ")
        job_id = int(text.split()[2])
        c.use("work")
        peeked = c.peek(job_id)
        assert peeked is not None
        assert peeked.body == "hello\nworld"
        stats = c.stats_job(job_id)
        assert (stats["pri"], stats["ttr"]) == (5, 30)

        answer = post(
            web,
            "/tubes/work/put",
            body="to one",
            priority="1",
            delay="100",
            ttr="60",
            server=server,
        )
        kind, text = flash_of(web, answer)
        assert (kind, text.split()[-1]) == ("flash", server)
        delayed = int(text.split()[2])
        assert c.stats_job(delayed)["state"] == "delayed"

        kind, text = flash_of(web, post(web, "/tubes/work/kick", bound="10", server=""))
        assert (kind, text) == ("flash", f"kicked 1 job in work on {server}")
        assert c.stats_job(delayed)["state"] == "ready"

        c.watch("work")
        reserved = c.reserve(timeout=0)
        assert reserved is not None
        reserved.bury()
        kind, text = flash_of(
            web, post(web, "/tubes/work/kick-job", id=str(reserved.id), server=server)
        )
        assert (kind, text) == ("flash", f"kicked job {reserved.id} on {server}")
        assert c.stats_job(reserved.id)["state"] == "ready"

        kind, text = flash_of(web, post(web, "/tubes/work/delete", id=str(delayed), server=""))
        assert (kind, text) == ("flash", f"deleted job {delayed} on {server}")
        with pytest.raises(jackstalk.NotFoundError):
            c.stats_job(delayed)

        kind, text = flash_of(web, post(web, "/tubes/work/pause", seconds="120", server=""))
        assert (kind, text) == ("flash", f"paused work for 120 s on {server}")
        assert c.stats_tube("work")["pause"] == 120

        # The message was shown once: the next visit has none.
        again = parse(web.get("/tubes/work").text)
        assert not again.find_all("p", "flash")


def test_failed_actions_say_why(beanstalkd: BeanstalkdServer) -> None:
    server = name_of(beanstalkd.address)
    with console([beanstalkd.address]) as web:
        cases = [
            ("delete", {"id": "12345", "server": server}, "job 12345 not found"),
            ("kick-job", {"id": "12345", "server": server}, "job 12345 not found"),
            ("delete", {"id": "zero", "server": server}, "job id must be"),
            ("kick", {"bound": "-1", "server": ""}, "bound must be"),
            ("pause", {"seconds": "x", "server": ""}, "seconds must be"),
            (
                "put",
                {"body": "x", "priority": "1", "delay": "0", "ttr": "0", "server": ""},
                "ttr must be",
            ),
            ("delete", {"id": "1", "server": "elsewhere:1"}, "unknown server"),
        ]
        for action, fields, expected in cases:
            kind, text = flash_of(web, post(web, f"/tubes/work/{action}", **fields))
            assert kind == "error", (action, text)
            assert expected in text, (action, text)
        page = web.get("/tubes/work")
        no_action = web.post("/tubes/work/explode", data={"csrf": csrf_of(page.text)})
        assert no_action.status_code == 404


def test_actions_over_several_servers(beanstalkd: BeanstalkdServer) -> None:
    with ExitStack() as stack:
        other = stack.enter_context(run_beanstalkd())
        web = stack.enter_context(console([beanstalkd.address, other.address]))
        first, second = name_of(beanstalkd.address), name_of(other.address)
        for address in (beanstalkd.address, other.address):
            with jackstalk.Client(address) as c:
                c.put(b"later", tube="work", delay=500)
        kind, text = flash_of(web, post(web, "/tubes/work/kick", bound="5", server=""))
        assert (kind, text) == ("flash", "kicked 2 jobs in work on all servers")
        kind, text = flash_of(web, post(web, "/tubes/work/pause", seconds="0", server=second))
        assert (kind, text) == ("flash", f"paused work for 0 s on {second}")
        # A job id means nothing without its server.
        kind, text = flash_of(web, post(web, "/tubes/work/delete", id="1", server=""))
        assert (kind, text) == ("error", "choose a server: job ids are per server")
        puts = set()
        for _ in range(6):
            kind, text = flash_of(
                web,
                post(
                    web, "/tubes/work/put", body="b", priority="1", delay="0", ttr="60", server=""
                ),
            )
            puts.add(text.split()[-1])
        assert puts <= {first, second}
        page = parse(web.get("/tubes/work").text)
        jobs = page.by_id("ready").find_all("div", "job")
        assert {job.attrs["data-server"] for job in jobs} == {first, second}
        # One server stopped: the action on all says where it failed.
        other.process.terminate()
        other.process.wait(timeout=30)
        kind, text = flash_of(web, post(web, "/tubes/work/kick", bound="1", server=""))
        assert kind == "error"
        assert f"done on {first}" in text
        assert second in text


def test_post_without_csrf_is_refused(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address]) as web, jackstalk.Client(beanstalkd.address) as c:
        c.put(b"keep", tube="work")
        fields = {"body": "x", "priority": "1", "delay": "0", "ttr": "60", "server": ""}
        assert web.post("/tubes/work/put", data=fields).status_code == 403
        token = csrf_of(web.get("/tubes/work").text)
        assert web.post("/tubes/work/put", data={**fields, "csrf": "forged"}).status_code == 403
        foreign = web.post(
            "/tubes/work/put",
            data={**fields, "csrf": token},
            headers={"origin": "http://evil.example"},
        )
        assert foreign.status_code == 403
        ours = web.post(
            "/tubes/work/put",
            data={**fields, "csrf": token},
            headers={"origin": "http://testserver"},
        )
        assert ours.status_code == 303
        web.cookies.clear()  # the field without the cookie: refused
        assert web.post("/tubes/work/put", data={**fields, "csrf": token}).status_code == 403
        assert c.stats_tube("work")["current-jobs-ready"] == 2


def test_read_only_has_no_forms_and_refuses_posts(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address], read_only=True) as web:
        for path in ("/", "/tubes/default", "/tubes/default?id=1&server=x"):
            page = web.get(path)
            assert page.status_code == 200
            forms = parse(page.text).find_all("form")
            assert all(form.attrs.get("method") != "post" for form in forms)
            assert 'method="post"' not in page.text
        token = web.cookies.get("jackstalk_csrf")
        for action in ("put", "kick", "kick-job", "delete", "pause"):
            answer = web.post(f"/tubes/default/{action}", data={"csrf": token or ""})
            assert answer.status_code == 403


def test_flash_is_escaped(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address]) as web:
        answer = post(web, "/tubes/work/delete", id="1", server="<b>x</b>")
        location = answer.headers["location"]
        page = web.get(location)
        assert "<b>x</b>" not in page.text
        assert "&lt;b&gt;x&lt;/b&gt;" in page.text
        assert unquote(location) == "/tubes/work"


def test_bad_tube_name_is_a_404_page(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address]) as web:
        page = web.get("/tubes/-bad")
        assert page.status_code == 404
        parse(page.text).find("p", "error")  # (find fails when it is missing)


def test_a_spread_put_with_every_server_down_says_so() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        gone = probe.getsockname()[:2]
    with console([gone]) as web:
        answer = post(
            web, "/tubes/work/put", body="x", priority="1", delay="0", ttr="60", server=""
        )
        kind, text = flash_of(web, answer)
        assert kind == "error"
        assert text.startswith("put failed: ")


def test_a_broken_flash_cookie_is_ignored(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address]) as web:
        web.cookies.set("jackstalk_flash", "%7Bnot-json")
        page = web.get("/tubes/work")
        assert page.status_code == 200
        document = parse(page.text)
        assert not document.find_all("p", "flash")
        assert not document.find_all("p", "error")
