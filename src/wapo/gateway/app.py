"""The gateway's aiohttp application: ``make_app`` wires the routes (agents, vaults, logs, apps,
health, metrics) and the middleware that gives every answer its request id."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from aiohttp import web

from ..host.net.websocket import set_max_message_size
from ..paths import default_data_dir
from ..store import AnyStore, StoreUnavailable
from .accesslog import flush as flush_access_log, write_line
from .agents import DISCONNECT_GRACE, handle_agent
from .apps import proxy as apps_proxy, routes as app_routes
from . import admin, cron
from .config import GatewayConfig
from .context import (BACKGROUND, CODE_CACHE, CONFIG, LOGS, METRICS, NETWORK, REQUEST_ID, REQUEST_ID_HEADER, RUNS,
                      RUN_LOG, RUN_OPTIONS, STACKS, STORE, TELEMETRY, VAULT_RATE, error_response, new_request_id)
from .stacks import StackMapper
from .logs import get_logs
from .logwriter import LogWriter
from .metrics import Metrics
from .ratelimit import RateLimiter
from .runlog import RunLog
from .storage import open_gateway_store
from .vaults import create_vault, get_vault

log = logging.getLogger("wapo.gateway")

NODE_HEADER = "X-Wapo-Node"
READY_TIMEOUT = 3.0

__all__ = ["REQUEST_ID_HEADER", "make_app", "new_request_id"]


@web.middleware
async def request_id_middleware(request: web.Request, handler):
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    metrics = request.app[METRICS]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    if request.app[CONFIG].access_log:
        started = time.monotonic()
        try:
            response = await _answer(request, handler, request_id, metrics, route)
        except web.HTTPException as exc:
            write_line(request, exc.status, time.monotonic() - started, request_id)
            raise
        write_line(request, response.status, time.monotonic() - started, request_id)
        return response
    return await _answer(request, handler, request_id, metrics, route)


async def _answer(request: web.Request, handler, request_id: str, metrics: Metrics, route: str):
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        metrics.count_request(route, exc.status)
        if exc.status < 400:
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
        return _json_error(exc, request_id)  # aiohttp's own errors (404, 405, 413...) answer JSON like ours
    except StoreUnavailable as exc:  # the shared database is down or slow: say so, never hang
        metrics.count_request(route, 503)
        response = error_response(503, f"the database is unavailable, try again shortly: {exc}", request_id)
        response.headers["Retry-After"] = "1"
        return response
    except Exception:
        log.exception("unhandled error in %s", request.path)
        metrics.count_request(route, 500)
        return error_response(500, "internal error", request_id)
    if REQUEST_ID_HEADER not in response.headers and not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    metrics.count_request(route, response.status)
    return response


def _json_error(exc: web.HTTPException, request_id: str) -> web.Response:
    response = error_response(exc.status, exc.text or exc.reason, request_id)
    for name, value in exc.headers.items():  # e.g. Allow of a 405, Retry-After
        if name.lower() not in ("content-type", "content-length", REQUEST_ID_HEADER.lower()):
            response.headers[name] = value
    return response


# --- health and metrics ----------------------------------------------------------------

async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    """Ready to take traffic: the database answers (within READY_TIMEOUT) and its schema is current."""
    store = request.app[STORE]
    try:
        ok, detail = await asyncio.wait_for(asyncio.to_thread(store.readiness), READY_TIMEOUT)
    except asyncio.TimeoutError:
        ok, detail = False, f"the database did not answer within {READY_TIMEOUT:g}s"
    return web.json_response({"ok": ok, "detail": detail, "node": request.app[CONFIG].node},
                             status=200 if ok else 503)


def node_header(node: str):
    """Every answer says which node gave it (X-Wapo-Node), streamed ones and errors included."""
    async def add_node_header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[NODE_HEADER] = node
    return add_node_header


async def metrics_endpoint(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": content_type})


def _telemetry(app: web.Application, config: GatewayConfig):
    """With an OTLP endpoint, spans and logs of every request (the SDK is imported only then)."""
    if not config.otlp_endpoint:
        return None
    from .telemetry import Telemetry, telemetry_middleware
    telemetry = Telemetry(config.otlp_endpoint)
    app.middlewares.append(telemetry_middleware(telemetry))

    async def flush(app: web.Application) -> None:
        await asyncio.to_thread(telemetry.shutdown)
    app.on_cleanup.append(flush)
    return telemetry


def make_app(config: GatewayConfig, store: AnyStore | None = None) -> web.Application:
    data_dir = config.data_dir or default_data_dir()
    config = config.with_(data_dir=Path(data_dir))
    app = web.Application(middlewares=[request_id_middleware], client_max_size=config.max_request_body)
    app[CONFIG] = config
    app[STORE] = store or open_gateway_store(config)
    app.on_response_prepare.append(node_header(config.node))
    app[METRICS] = Metrics(config.metrics_top_cids)
    app[LOGS] = LogWriter(app[STORE])
    # every run, for the dashboard: kept only when there is one (a write and a timer per request)
    app[RUN_LOG] = RunLog(config.data_dir) if config.admin_token else None
    app[CODE_CACHE] = {}
    app[RUNS] = {}
    app[RUN_OPTIONS] = {}
    app[BACKGROUND] = set()
    app[NETWORK] = config.network()
    app[VAULT_RATE] = RateLimiter(config.vault_rate_limit, config.data_dir)  # shared by --workers
    app[STACKS] = StackMapper(app[STORE])
    if config.ws_max_message is not None:
        set_max_message_size(config.ws_max_message)
    app[TELEMETRY] = _telemetry(app, config)

    async def flush_logs(app: web.Application) -> None:
        if app[BACKGROUND]:
            await asyncio.wait(list(app[BACKGROUND]), timeout=DISCONNECT_GRACE)
        await app[LOGS].close()
        if app[RUN_LOG] is not None:
            await app[RUN_LOG].close()
        app[VAULT_RATE].close()
        flush_access_log()

    app.on_cleanup.append(flush_logs)
    cron.install(app, config)  # [cron.<name>] jobs, scheduled in every process (one runs each tick)
    app.router.add_route("*", "/ipfs/{cid}", handle_agent)
    app.router.add_route("*", "/ipfs/{cid}/{path:.*}", handle_agent)
    app.router.add_post("/vaults", create_vault)
    app.router.add_get("/vaults/{key}/{token}", get_vault)
    app.router.add_get("/logs/all/ipfs/{cid}", get_logs)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    # long-running apps: /app/<id>/..., /apps (wapo.gateway.apps)
    runs_apps = app_routes.install(app)
    if not runs_apps:  # a --workers child: the first process runs the apps, this one forwards to it
        apps_proxy.install_forwarding(app, apps_proxy.socket_path(config))
    routes = app_routes.ROUTES
    if runs_apps and config.database_url:  # a cluster: one node runs each app, the others forward to it
        from .apps import cluster as apps_cluster
        routes = apps_cluster.install(app)
    for method, path, handler in routes:
        app.router.add_route(method, path, handler if runs_apps else apps_proxy.forward)
    admin.install(app)  # /dashboard and /admin/api/..., with an admin token only
    return app
