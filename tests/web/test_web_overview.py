"""The overview, the live data and the snapshot API, against real beanstalkd servers."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
from webkit import console, csrf_of, hostile, name_of, parse, snapshot_after

import jackstalk
from jackstalk.testing import BeanstalkdServer, run_beanstalkd

pytestmark = pytest.mark.usefixtures("beanstalkd")


def test_overview_lists_servers_and_tubes(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address, timeout=30) as client:
        client.put(b"one", tube="emails")
        client.put(b"two", tube="emails")
        client.put(b"three", tube="thumbs", delay=100)
    with console([beanstalkd.address]) as web:
        page = web.get("/")
        assert page.status_code == 200
        document = parse(page.text)
        assert document.find("body").attrs["data-updates"] == "0"
        servers = document.by_id("servers")
        row = servers.find("tr", "server")
        assert row.attrs["data-server"] == name_of(beanstalkd.address)
        assert row.cell("state") == "up"
        assert row.cell("error") == ""
        assert row.cell("version")
        assert row.cell("current-jobs-ready") == "2"
        assert row.cell("current-jobs-delayed") == "1"
        total = servers.find("tr", "total")
        assert total.cell("current-jobs-ready") == "2"
        tubes = {tr.attrs["data-tube"]: tr for tr in document.by_id("tubes").find_all("tr", "tube")}
        assert set(tubes) == {"default", "emails", "thumbs"}
        assert tubes["emails"].cell("current-jobs-ready") == "2"
        assert tubes["thumbs"].cell("current-jobs-delayed") == "1"
        assert tubes["emails"].find("td", "name").find("a").attrs["href"] == "/tubes/emails"
        tubes["emails"].find("td", "chart").find("svg")  # (find fails when it is missing)
        for cls in ("rate-puts", "rate-reserves", "rate-deletes", "current-waiting"):
            tubes["emails"].find("td", cls)  # (find fails when it is missing)
        # The history for the charts rides along as JSON (never as a script).
        seed = json.loads(document.by_id("history").text)
        assert "emails" in seed["tubes"]


def test_snapshot_json_and_rates(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address]) as web, jackstalk.Client(beanstalkd.address) as c:
        before = snapshot_after(web)
        assert before["servers"][0]["state"] == "up"
        for _ in range(5):
            c.put(b"x", tube="busy")
        c.delete(c.put(b"y", tube="busy"))
        after = snapshot_after(web)
        tube = {row["name"]: row for row in after["tubes"]}["busy"]
        assert tube["current-jobs-ready"] == 5
        assert tube["rate-reserves"] is None  # beanstalkd counts no reserves per tube
        assert tube["rate-puts"] >= 0.0
        server = after["servers"][0]
        assert server["rate-puts"] is not None
        assert set(after["total"]) >= {"current-jobs-ready", "state", "rate-reserves"}


def test_new_tube_and_counts_show_in_the_live_data(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address]) as web, jackstalk.Client(beanstalkd.address) as c:
        first = snapshot_after(web)
        assert "fresh" not in {row["name"] for row in first["tubes"]}
        c.put(b"hello", tube="fresh")
        later = snapshot_after(web)
        rows = {row["name"]: row for row in later["tubes"]}
        assert rows["fresh"]["current-jobs-ready"] == 1


def test_events_stream_carries_snapshots(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address]) as web:
        with web.stream("GET", "/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            seen = []
            for line in response.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                if len(seen) == 2:
                    break
        assert seen[1]["seq"] > seen[0]["seq"]
        assert seen[0]["servers"][0]["name"] == name_of(beanstalkd.address)


def test_several_servers_and_one_stopped(beanstalkd: BeanstalkdServer) -> None:
    with ExitStack() as stack:
        doomed = stack.enter_context(run_beanstalkd())
        addresses = [beanstalkd.address, doomed.address]
        web = stack.enter_context(console(addresses))
        with jackstalk.Client(doomed.address) as c:
            c.put(b"a", tube="shared")
        with jackstalk.Client(beanstalkd.address) as c:
            c.put(b"b", tube="shared")
        both = snapshot_after(web)
        assert [s["state"] for s in both["servers"]] == ["up", "up"]
        shared = {row["name"]: row for row in both["tubes"]}["shared"]
        assert shared["current-jobs-ready"] == 2
        assert shared["servers"] == 2
        assert both["total"]["state"] == "2/2 up"
        doomed.process.terminate()
        doomed.process.wait(timeout=30)
        with jackstalk.Client(beanstalkd.address) as c:
            c.put(b"c", tube="shared")
        one = snapshot_after(web)
        states = {s["name"]: s for s in one["servers"]}
        assert states[name_of(doomed.address)]["state"] == "down"
        assert states[name_of(doomed.address)]["error"]
        assert states[name_of(beanstalkd.address)]["state"] == "up"
        shared = {row["name"]: row for row in one["tubes"]}["shared"]
        assert shared["current-jobs-ready"] == 2  # the live server's 2, updated
        assert one["total"]["state"] == "1/2 up"
        page = parse(web.get("/").text)
        rows = {r.attrs["data-server"]: r for r in page.by_id("servers").find_all("tr", "server")}
        down = rows[name_of(doomed.address)]
        assert down.cell("state") == "down"
        assert down.cell("error")
        assert "down" in down.classes


@pytest.mark.parametrize("mode", ["silent", "garbage"])
def test_a_hostile_server_is_an_error_row(beanstalkd: BeanstalkdServer, mode: str) -> None:
    with hostile(mode) as bad, console([beanstalkd.address, bad.address], timeout=0.5) as web:
        data = snapshot_after(web)
        rows = {s["name"]: s for s in data["servers"]}
        assert rows[name_of(bad.address)]["state"] == "down"
        assert rows[name_of(bad.address)]["error"]
        assert rows[name_of(beanstalkd.address)]["state"] == "up"
        page = web.get("/")
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        tube = web.get("/tubes/default")
        assert tube.status_code == 200
        errors = parse(tube.text).find_all("p", "error")
        assert any(e.attrs.get("data-server") == name_of(bad.address) for e in errors)
        metrics = web.get("/metrics")
        assert metrics.status_code == 200
        asked = web.get("/tubes/default", params={"id": "1", "server": name_of(bad.address)})
        assert asked.status_code == 200
        assert name_of(bad.address) in parse(asked.text).find("p", "error").text
        page = web.get("/tubes/default")
        acted = web.post(
            "/tubes/default/delete",
            data={"csrf": csrf_of(page.text), "id": "1", "server": name_of(bad.address)},
        )
        assert acted.status_code == 303
        shown = parse(web.get(acted.headers["location"]).text).find("p", "error").text
        assert shown.startswith(name_of(bad.address))


def test_a_server_that_refuses_connections(beanstalkd: BeanstalkdServer) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[:2]
    with console([closed, beanstalkd.address]) as web:
        data = snapshot_after(web)
        assert data["servers"][0]["state"] == "down"
        assert data["servers"][0]["uptime"] == ""
        assert data["servers"][1]["state"] == "up"


def test_quiet_streams_keep_alive_and_long_polls_end(
    beanstalkd: BeanstalkdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jackstalk._app.web import app as web_app

    monkeypatch.setattr(web_app, "KEEP_ALIVE", 0.01)
    monkeypatch.setattr(web_app, "LONG_POLL", 0.01)
    # A refresh an hour away: nothing new arrives while the test reads.
    with console([beanstalkd.address], interval=3600.0) as web:
        seq = web.get("/api/snapshot").json()["seq"]
        assert web.get(f"/api/snapshot?after={seq}").json()["seq"] == seq
        with web.stream("GET", "/events") as response:
            lines = response.iter_lines()
            assert next(lines).startswith("retry:")
            assert next(lines).startswith("data: ")
            assert next(lines) == ""
            assert next(lines) == ": keep-alive"
