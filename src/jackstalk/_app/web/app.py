"""The console's Starlette application: the pages, the live data, the actions, /metrics.

Routes: ``/`` (overview), ``/tubes/{name}`` (a tube: peeks, stats-job, action forms),
``POST /tubes/{name}/{kick,kick-job,delete,pause,put}``, ``/events`` (server-sent events,
each a JSON snapshot), ``/api/snapshot`` (one; ``?after=N`` waits for a snapshot numbered
above N), ``/metrics`` and ``/static/...``. Pages are rendered by Jinja2 with autoescape;
the browser script applies live data with ``textContent`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jackstalk._api.base import Address
from jackstalk._api.stats import JobStats
from jackstalk._app.async_cluster import AsyncCluster
from jackstalk._app.cluster import server_name
from jackstalk._app.web.jobs import ServerCalls, reason
from jackstalk._app.web.metrics import registry_for
from jackstalk._app.web.poller import SERVER_FIELDS, TUBE_FIELDS, Poller
from jackstalk._app.web.security import CSRF_COOKIE, Guard, csrf_ok, new_csrf_token
from jackstalk._protocol.errors import NotFoundError
from jackstalk._protocol.validate import U32_MAX, tube_name
from jackstalk.transports.asyncio import AsyncClient

__all__ = ["WebConfig", "create_app"]

HERE = Path(__file__).resolve().parent
FLASH_COOKIE = "jackstalk_flash"
JOB_STATS_FIELDS: tuple[str, ...] = tuple(JobStats.__annotations__)
"""The fields of stats-job, in beanstalkd's order (any others follow them)."""

LONG_POLL = 30.0
"""Seconds ``/api/snapshot?after=N`` waits at most for a newer snapshot."""
KEEP_ALIVE = 15.0
"""Seconds without a snapshot after which ``/events`` sends a comment, so that proxies
keep the stream open."""


@dataclass
class WebConfig:
    """What the console serves: the servers and how to treat them and its visitors.

    ``interval``: seconds between refreshes. ``timeout``: the longest a server may take to
    answer one refresh, one page's reads or one action (then it counts as down).
    ``token`` / ``basic_auth`` (``USER:PASSWORD``): required credentials, if given.
    ``read_only``: no actions. ``client_options``: passed to each :class:`AsyncClient`
    (``ssl=`` for TLS, say).
    """

    addresses: Sequence[Address]
    interval: float = 1.0
    timeout: float = 5.0
    read_only: bool = False
    token: str | None = None
    basic_auth: str | None = None
    client_options: Mapping[str, Any] = field(default_factory=dict)


class _ActionError(Exception):
    """An action that could not be done: its message goes to the page as an error."""


def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["path"] = lambda name: quote(str(name), safe="")
    environment.filters["number"] = _number
    return environment


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def create_app(config: WebConfig) -> Starlette:
    """The console for ``config``'s servers, as an ASGI application (its lifespan runs the
    poller: serve it with uvicorn, or drive it with Starlette's ``TestClient``)."""
    names = [server_name(address) for address in config.addresses]
    if not names:
        raise ValueError("the console needs at least one server")
    servers = dict(zip(names, config.addresses, strict=True))
    poll_timeout = min(config.timeout, max(1.0, 2 * config.interval))
    poller = Poller(
        config.addresses,
        interval=config.interval,
        timeout=poll_timeout,
        client_options=config.client_options,
    )
    calls = ServerCalls(servers, timeout=config.timeout, client_options=config.client_options)
    # A page's reads wait no longer than a refresh does: a frozen server slows no page.
    reads = ServerCalls(servers, timeout=poll_timeout, client_options=config.client_options)
    templates = _templates()
    registry = registry_for(lambda: poller.latest)
    state: dict[str, Any] = {}

    def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
        flash = _read_flash(request)
        html = templates.get_template(template).render(
            servers=names,
            read_only=config.read_only,
            csrf=token,
            flash=flash,
            server_fields=SERVER_FIELDS,
            tube_fields=TUBE_FIELDS,
            **values,
        )
        response = HTMLResponse(html, status_code=status)
        response.headers["cache-control"] = "no-store"
        if request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE)
        return response

    async def overview(request: Request) -> Response:
        snapshot = poller.latest.json()
        history = {tube: list(points) for tube, points in poller.history.items()}
        return page(
            request,
            "overview.html",
            snapshot=snapshot,
            history={"points": poller.history_points, "tubes": history},
        )

    async def tube_page(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            tube_name(name)
        except ValueError as error:
            return page(request, "error.html", message=str(error), status=404)
        peeks, peek_errors = await reads.peeks(name)
        rows = []
        for server in poller.latest.servers:
            stats = server.tubes.get(name)
            if stats is not None:
                rows.append((server.name, stats))
        total = {row["name"]: row for row in poller.latest.json()["tubes"]}.get(name)
        job_stats: list[tuple[str, Any]] | None = None
        job_error = ""
        query = request.query_params
        if "id" in query:
            try:
                job_stats = await _stats_job(query.get("id", ""), query.get("server", ""))
            except _ActionError as error:
                job_error = str(error)
        return page(
            request,
            "tube.html",
            tube=name,
            peeks=peeks,
            peek_errors=peek_errors,
            rows=rows,
            total=total,
            job_stats=job_stats,
            job_error=job_error,
            job_query={"id": query.get("id", ""), "server": query.get("server", "")},
        )

    def one_server(server: str) -> str:
        if server in servers:
            return server
        if server == "" and len(names) == 1:
            return names[0]
        if server == "":
            raise _ActionError("choose a server: job ids are per server")
        raise _ActionError(f"unknown server {server!r}")

    def some_servers(server: str) -> list[str]:
        return names if server == "" else [one_server(server)]

    async def _stats_job(text: str, server: str) -> list[tuple[str, Any]]:
        job = _job_id(text)
        where = one_server(server)
        try:
            stats: Mapping[str, Any] = await reads.on(where, lambda c: c.stats_job(job))
        except NotFoundError:
            raise _ActionError(f"job {job} not found on {where}") from None
        except Exception as error:
            raise _ActionError(f"{where}: {reason(error)}") from None
        shown = [(key, stats[key]) for key in JOB_STATS_FIELDS if key in stats]
        known = set(JOB_STATS_FIELDS)
        return shown + [(str(k), v) for k, v in stats.items() if k not in known]

    async def each(
        tube: str, server: str, call: Callable[[AsyncClient], Awaitable[Any]]
    ) -> tuple[list[tuple[str, Any]], list[str]]:
        done: list[tuple[str, Any]] = []
        failed: list[str] = []
        for where, result in await calls.each(some_servers(server), call, use=tube):
            if isinstance(result, BaseException):
                failed.append(f"{where}: {reason(result)}")
            else:
                done.append((where, result))
        return done, failed

    async def kick(tube: str, form: Mapping[str, str]) -> str:
        bound = _integer(form.get("bound", ""), "bound", 1, U32_MAX)
        done, failed = await each(tube, form.get("server", ""), lambda c: c.kick(bound))
        _fail_if(failed, done)
        kicked = sum(int(count) for _, count in done)
        return f"kicked {kicked} job{'s' * (kicked != 1)} in {tube} on {_on(done, names)}"

    async def kick_job(tube: str, form: Mapping[str, str]) -> str:
        job = _job_id(form.get("id", ""))
        where = one_server(form.get("server", ""))
        await _one(where, tube, lambda c: c.kick_job(job), job)
        return f"kicked job {job} on {where}"

    async def delete(tube: str, form: Mapping[str, str]) -> str:
        job = _job_id(form.get("id", ""))
        where = one_server(form.get("server", ""))
        await _one(where, tube, lambda c: c.delete(job), job)
        return f"deleted job {job} on {where}"

    async def pause(tube: str, form: Mapping[str, str]) -> str:
        seconds = _integer(form.get("seconds", ""), "seconds", 0, U32_MAX)
        done, failed = await each(
            tube, form.get("server", ""), lambda c: c.pause_tube(tube, seconds)
        )
        _fail_if(failed, done)
        return f"paused {tube} for {seconds} s on {_on(done, names)}"

    async def put(tube: str, form: Mapping[str, str]) -> str:
        body = form.get("body", "").replace("\r\n", "\n").encode("utf-8")
        priority = _integer(form.get("priority", ""), "priority", 0, U32_MAX)
        delay = _integer(form.get("delay", ""), "delay", 0, U32_MAX)
        ttr = _integer(form.get("ttr", ""), "ttr", 1, U32_MAX)
        server = form.get("server", "")
        if server == "":
            cluster: AsyncCluster = state["cluster"]
            try:
                async with asyncio.timeout(config.timeout):
                    where, job = await cluster.put(body, priority, delay, ttr, tube=tube)
            except Exception as error:
                raise _ActionError(f"put failed: {reason(error)}") from None
        else:
            where = one_server(server)
            job = await _one(
                where, tube, lambda c: c.put(body, priority, delay, ttr, tube=tube), None
            )
        return f"put job {job} in {tube} on {where}"

    async def _one(
        where: str, tube: str, call: Callable[[AsyncClient], Awaitable[Any]], job: int | None
    ) -> Any:
        try:
            return await calls.on(where, call, use=tube)
        except NotFoundError:
            raise _ActionError(f"job {job} not found on {where}") from None
        except Exception as error:
            raise _ActionError(f"{where}: {reason(error)}") from None

    actions: dict[str, Callable[[str, Mapping[str, str]], Awaitable[str]]] = {
        "kick": kick,
        "kick-job": kick_job,
        "delete": delete,
        "pause": pause,
        "put": put,
    }

    async def act(request: Request) -> Response:
        name = request.path_params["name"]
        action = request.path_params["action"]
        form = await request.form()
        values = {key: str(value) for key, value in form.items() if isinstance(value, str)}
        if not csrf_ok(dict(request.headers), values.get("csrf", "")):
            return Response("CSRF check failed: reload the page", 403, media_type="text/plain")
        handler = actions.get(action)
        if handler is None:
            return Response("no such action", 404, media_type="text/plain")
        try:
            tube_name(name)
            message, kind = await handler(name, values), "flash"
        except (_ActionError, ValueError) as error:
            message, kind = str(error), "error"
        response = RedirectResponse(f"/tubes/{quote(name, safe='')}", status_code=303)
        response.set_cookie(
            FLASH_COOKIE,
            quote(json.dumps({"kind": kind, "text": message[:500]}), safe=""),
            httponly=True,
            samesite="strict",
        )
        return response

    async def snapshot_api(request: Request) -> Response:
        after = request.query_params.get("after")
        if after is not None and after.isdigit():
            try:
                async with asyncio.timeout(LONG_POLL):
                    snapshot = await poller.wait_after(int(after))
            except TimeoutError:
                snapshot = poller.latest
        else:
            snapshot = poller.latest
        return JSONResponse(snapshot.json(), headers={"cache-control": "no-store"})

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            seq = poller.latest.seq
            yield f"retry: 2000\ndata: {poller.latest.text()}\n\n"
            while not poller.closed:
                try:
                    async with asyncio.timeout(KEEP_ALIVE):
                        snapshot = await poller.wait_after(seq)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if snapshot.seq == seq:
                    break
                seq = snapshot.seq
                yield f"data: {snapshot.text()}\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["cluster"] = AsyncCluster(
            list(config.addresses), encoding=None, **dict(config.client_options)
        )
        await poller.refresh()
        task = asyncio.create_task(poller.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await poller.close()
            await state["cluster"].close()

    routes = [
        Route("/", overview),
        Route("/api/snapshot", snapshot_api),
        Route("/events", events),
        Route("/metrics", metrics),
        Route("/tubes/{name:path}/{action:str}", act, methods=["POST"]),
        Route("/tubes/{name:path}", tube_page),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    guard = Middleware(
        Guard, token=config.token, basic_auth=config.basic_auth, read_only=config.read_only
    )
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[guard])
    app.state.poller = poller
    app.state.config = config
    return app


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = json.loads(unquote(raw))
        return {"kind": str(value["kind"]), "text": str(value["text"])}
    except (ValueError, KeyError, TypeError):
        return None


def _integer(text: str, what: str, low: int, high: int) -> int:
    text = text.strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise _ActionError(f"{what} must be a whole number from {low} to {high}")
    return int(text)


def _job_id(text: str) -> int:
    return _integer(text, "job id", 1, 2**64 - 1)


def _fail_if(failed: list[str], done: list[tuple[str, Any]]) -> None:
    if failed:
        prefix = f"done on {', '.join(w for w, _ in done)}; " if done else ""
        raise _ActionError(prefix + "failed on " + "; ".join(failed))


def _on(done: list[tuple[str, Any]], names: list[str]) -> str:
    return "all servers" if len(done) == len(names) > 1 else ", ".join(w for w, _ in done)
