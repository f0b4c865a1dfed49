"""The operator's dashboard (``/dashboard``) and its JSON routes (``/admin/api/...``).

On only with an admin token (``--admin-token``, ``admin_token``, ``WAPO_ADMIN_TOKEN``): without
one none of these routes exists (404). The JSON routes take ``Authorization: Bearer TOKEN`` or
the dashboard's cookie and answer 404 to anything else (they do not admit they exist); the page
logs in with a form that sets that cookie (HttpOnly, SameSite=Strict), whose value is an HMAC of
the token, not the token. The data comes from files every worker shares (runs.sqlite, the store),
so any process answers for the whole service; apps live in the first process and their status
is asked from it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import time
from importlib import resources
from typing import NoReturn

from aiohttp import web

from ..store import InvalidCID, parse_cid
from ..store.logs import iso_time
from .apps import proxy as apps_proxy
from .apps.routes import APPS
from .context import CONFIG, REQUEST_ID, RUN_LOG, STORE, error_response

COOKIE = "wapo_admin"
HOUR = 3600.0
TAIL_POLL = 0.25  # how often the live tail looks for new log lines (any worker may have written them)
STATIC = {"app.js": "application/javascript", "style.css": "text/css"}


def _cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"wapo dashboard session", hashlib.sha256).hexdigest()


def authorized(request: web.Request) -> bool:
    """The request carries the admin token (a Bearer header) or the dashboard's cookie."""
    token = request.app[CONFIG].admin_token
    if not token:
        return False
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), _cookie_value(token).encode())


def _not_found(request: web.Request) -> NoReturn:
    """The very answer of a path no route matches (the middleware makes it JSON with the request id)."""
    raise web.HTTPNotFound()


def admin_only(handler):
    """404 unless authorized: an admin route without the token looks like no route at all."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not authorized(request):
            return _not_found(request)
        return await handler(request)
    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    return guarded


@functools.lru_cache(maxsize=None)
def _asset(name: str) -> bytes:
    return resources.files("wapo.gateway").joinpath("dashboard", name).read_bytes()


# --- the page ------------------------------------------------------------------------------------

async def dashboard_page(request: web.Request) -> web.Response:
    page = "index.html" if authorized(request) else "login.html"
    response = web.Response(body=_asset(page), content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self'; script-src 'self'"
    return response


async def dashboard_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        return _not_found(request)
    return web.Response(body=_asset(name), content_type=STATIC[name])


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    token = request.app[CONFIG].admin_token or ""
    given = str(form.get("token", ""))
    if not hmac.compare_digest(given.encode(), token.encode()):
        await asyncio.sleep(0.5)  # a guess costs time
        body = _asset("login.html").replace(b"<!--error-->", b'<p class="error">Wrong token.</p>')
        return web.Response(status=401, body=body, content_type="text/html")
    response = web.HTTPSeeOther("/dashboard")
    response.set_cookie(COOKIE, _cookie_value(token), httponly=True, samesite="Strict", path="/",
                        secure=request.secure)
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/dashboard")
    response.del_cookie(COOKIE, path="/")
    raise response


# --- JSON ------------------------------------------------------------------------------------

async def api_agents(request: web.Request) -> web.Response:
    """CIDs run in the last hour: requests, error rate, p50/p99, limits hit by kind."""
    agents = await asyncio.to_thread(request.app[RUN_LOG].agents, time.time() - HOUR)
    return web.json_response({"since": time.time() - HOUR, "agents": agents})


async def api_agent(request: web.Request) -> web.Response:
    """One agent: its recent runs and its requests and latency per minute over the last hour."""
    try:
        cid = parse_cid(request.match_info["cid"]).v0
    except InvalidCID as exc:
        return error_response(400, f"malformed CID: {exc}", request[REQUEST_ID])
    run_log = request.app[RUN_LOG]
    runs = await asyncio.to_thread(run_log.runs, cid, 50)
    series = await asyncio.to_thread(run_log.series, cid, time.time() - HOUR, 60.0)
    return web.json_response({"cid": cid, "runs": runs, "series": series})


async def api_logs_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the agent's latest log lines, then each new one: from the store when a
    run ends, and as they come from runs that last (any worker's: both go through files)."""
    try:
        cid = parse_cid(request.match_info["cid"]).v0
    except InvalidCID as exc:
        return error_response(400, f"malformed CID: {exc}", request[REQUEST_ID])
    store, run_log = request.app[STORE], request.app[RUN_LOG]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    # history from the store (runs that ended), then both the store and the lines that runs still in
    # progress publish (runlog.LiveLines); a line seen both ways is sent once
    records = [r.as_dict() for r in await asyncio.to_thread(store.query_logs, cid, None, 1, 50)]
    live_after = (await asyncio.to_thread(run_log.live_lines, cid, -1))[0]["id"]
    store_after = 0
    sent: dict[tuple, None] = {}
    try:
        while True:
            for record in sorted(records, key=lambda r: r["id"]):
                store_after = max(store_after, record["id"])
                key = (record["request_id"], record["time"], record["message"][:4096])
                if key in sent:
                    continue
                sent[key] = None
                await response.write(f"data: {json.dumps(record)}\n\n".encode())
            if len(sent) > 10_000:
                for key in list(sent)[:5_000]:
                    del sent[key]
            await asyncio.sleep(TAIL_POLL)
            if request.transport is None or request.transport.is_closing():
                return response
            stored = [r.as_dict() for r in await asyncio.to_thread(store.query_logs, cid, None, 1, 100)
                      if r.id > store_after]
            live = await asyncio.to_thread(run_log.live_lines, cid, live_after)
            if live:
                live_after = live[-1]["id"]
            records = stored + [dict(line, id=0, cid=cid, time=iso_time(line["time"])) for line in live]
    except ConnectionResetError:
        return response  # the page went away


async def api_vaults(request: web.Request) -> web.Response:
    """Vault keys and their CIDs (never the data: that needs the vault's token)."""
    vaults = await asyncio.to_thread(request.app[STORE].vault_index)
    return web.json_response({"vaults": vaults})


async def api_apps(request: web.Request) -> web.StreamResponse:
    """Long-running apps: state, restarts, last exit (from the first process, which runs them)."""
    manager = request.app[APPS]
    if manager is None:
        return await apps_proxy.forward(request)
    return web.json_response({"apps": [m.status() for m in manager.apps.values()]})  # type: ignore[attr-defined]


async def api_cron(request: web.Request) -> web.Response:
    """The config's scheduled jobs, their next tick and their latest ticks (ran, skipped) from the ledger."""
    from .cronledger import CronLedger, PgCronLedger
    from .cronspec import next_tick
    config = request.app[CONFIG]
    if not config.cron:
        return web.json_response({"jobs": []})

    def latest() -> list[dict]:  # a cluster's ledger is in its database (every node's ticks)
        ledger = PgCronLedger(request.app[STORE]) if config.database_url else CronLedger(config.data_dir)
        try:
            return ledger.runs(limit=200)
        finally:
            ledger.close()
    rows = await asyncio.to_thread(latest)
    now = time.time()
    jobs = [{"name": job.name, "cid": job.cid, "schedule": job.schedule, "timezone": job.timezone,
             "method": job.method, "path": job.path, "nextTick": next_tick(job, now),
             "ticks": [r for r in rows if r["job"] == job.name][:20]} for job in config.cron]
    return web.json_response({"jobs": jobs})


def install(app: web.Application) -> None:
    """The dashboard's routes, when an admin token is configured (else none: 404)."""
    if not app[CONFIG].admin_token:
        return
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_get("/dashboard/static/{name}", dashboard_static)
    app.router.add_post("/dashboard/login", login)
    app.router.add_post("/dashboard/logout", logout)
    for path, handler in (("/admin/api/agents", api_agents), ("/admin/api/agents/{cid}", api_agent),
                          ("/admin/api/agents/{cid}/logs", api_logs_stream), ("/admin/api/vaults", api_vaults),
                          ("/admin/api/apps", api_apps), ("/admin/api/cron", api_cron)):
        app.router.add_get(path, admin_only(handler))
