"""The HTTP service: /ipfs/<cid>, /vaults, /logs, /healthz, /metrics (spec section 6)."""

from __future__ import annotations

import asyncio
import functools
import logging
import itertools
import os
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from aiohttp import web

from ..agent import AgentFailed, AgentRequest, AgentRun
from ..paths import default_data_dir
from ..store import InvalidCID, LogRetention, Store, VaultForbidden, VaultNotFound, format_text, parse_cid
from .config import GatewayConfig
from .ipfs import CodeNotFound, fetch_from_gateways
from .logwriter import LogWriter
from .metrics import Metrics

log = logging.getLogger("wapo.gateway")

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)
STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", GatewayConfig)
METRICS = web.AppKey("metrics", Metrics)
LOGS = web.AppKey("logs", LogWriter)
BACKGROUND = web.AppKey("background", set)
NETWORK = web.AppKey("network", object)
CODE_CACHE = web.AppKey("code_cache", dict)
CODE_CACHE_BYTES = 64 * 1024 * 1024  # content by CID never changes: keep recent code decoded in memory
DISCONNECT_POLL = 0.1
DISCONNECT_GRACE = 5.0  # how long an agent may take to notice its client left, before the handler returns
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer",
              "proxy-authenticate", "proxy-authorization"}


# Request ids: 32 hex digits, unique per process (a random prefix) and across its requests (a
# counter): uuid4 read 16 bytes of os.urandom per request, ~20 us here.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(int.from_bytes(os.urandom(8), "big"))


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFFFFFFFFFF:016x}"


def error_response(status: int, message: str, request_id: str, **extra: object) -> web.Response:
    body = {"error": message, "requestId": request_id, **extra}
    return web.json_response(body, status=status, headers={REQUEST_ID_HEADER: request_id})


@web.middleware
async def request_id_middleware(request: web.Request, handler):
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    metrics = request.app[METRICS]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = request_id
        metrics.requests.labels(route, str(exc.status)).inc()
        raise
    except Exception:
        log.exception("unhandled error in %s", request.path)
        metrics.requests.labels(route, "500").inc()
        return error_response(500, "internal error", request_id)
    if REQUEST_ID_HEADER not in response.headers and not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    metrics.requests.labels(route, str(response.status)).inc()
    return response


# --- agents ----------------------------------------------------------------------

async def load_code(app: web.Application, cid: str) -> str | None:
    """The agent's source: from memory, the store, or (verified) from an IPFS gateway."""
    cache = app[CODE_CACHE]
    code = cache.get(cid)
    if code is not None:
        return code
    store, config = app[STORE], app[CONFIG]
    data = await asyncio.to_thread(store.get_code, cid)
    if data is None and config.ipfs_gateways:
        data = await fetch_from_gateways(cid, config.ipfs_gateways, max_size=config.max_code_size,
                                         timeout=config.ipfs_timeout)
        await asyncio.to_thread(store.put_code, data, cid)
    if data is None:
        return None
    code = data.decode("utf-8")  # UnicodeDecodeError: the caller answers 422
    if sum(len(c) for c in cache.values()) + len(code) > CODE_CACHE_BYTES:
        cache.clear()
    cache[cid] = code
    return code


@functools.lru_cache(maxsize=4096)
def cid_v0(text: str) -> str:
    """The CIDv0 of a CID in a URL (cached: the same few CIDs are asked for again and again)."""
    return parse_cid(text).v0


def agent_url(request: web.Request, config: GatewayConfig, path: str, query: list[tuple[str, str]]) -> str:
    """The URL the agent sees: the gateway's origin, the path *after* /ipfs/<cid>, the query without
    `key`. Frameworks route on it (a Hono `app.get('/')` answers /ipfs/<cid>), as on the reference."""
    origin = config.public_url.rstrip("/") if config.public_url else f"{request.scheme}://{request.host}"
    return origin + quote(path, safe="/%:@!$&'()*+,;=-._~") + (f"?{urlencode(query)}" if query else "")


async def handle_agent(request: web.Request) -> web.StreamResponse:
    app, request_id = request.app, request[REQUEST_ID]
    config, store = app[CONFIG], app[STORE]
    try:
        cid = cid_v0(request.match_info["cid"])
    except InvalidCID as exc:
        return error_response(400, f"malformed CID: {exc}", request_id)
    try:
        code = await load_code(app, cid)
    except CodeNotFound as exc:
        return error_response(404, f"no code for {cid}: {exc}", request_id)
    except UnicodeDecodeError:
        return error_response(422, f"the code of {cid} is not UTF-8 JavaScript", request_id)
    if code is None:
        return error_response(404, f"no code for {cid} in this gateway's store (publish it with `wapo publish`)",
                              request_id)

    secret: dict = {}
    key = request.query.get("key")
    if key:
        try:
            secret = await asyncio.to_thread(store.secrets_for, cid, key)
        except VaultForbidden:
            return error_response(403, "this vault key belongs to another CID", request_id)
        except VaultNotFound:
            return error_response(403, "unknown vault key", request_id)

    if request.content_length is not None and request.content_length > config.max_request_body:
        return error_response(413, f"request body over {config.max_request_body} bytes", request_id)
    try:
        body = await read_body(request, config.max_request_body)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"request body over {config.max_request_body} bytes", request_id)

    query = [(k, v) for k, v in request.query.items() if k != "key"]
    path = "/" + request.match_info.get("path", "")
    agent_request = AgentRequest(
        method=request.method, path=path, query=query,
        headers=[(k, v) for k, v in request.headers.items()], body=body, secret=secret,
        url=agent_url(request, config, path, query))
    return await run_agent(request, cid, code, agent_request)


async def read_body(request: web.Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)


async def run_agent(request: web.Request, cid: str, code: str, agent_request: AgentRequest) -> web.StreamResponse:
    app, request_id = request.app, request[REQUEST_ID]
    config, metrics = app[CONFIG], app[METRICS]
    started = time.monotonic()
    log_entries: list[tuple[str, str, float]] = [
        ("START", f"Request: {request.method} {request.rel_url.path}", time.time())]
    run = AgentRun(code, agent_request, limits=config.limits_for(cid), name=f"{cid}.js", app_id=cid,
                   data_dir=config.data_dir, max_body=config.max_answer, network=app[NETWORK])
    metrics.live.inc()
    task = asyncio.create_task(run.run())
    watcher = _DisconnectWatch(request, run)
    try:
        try:
            head = await asyncio.shield(run.head)
        except AgentFailed as exc:
            result = await task
            kind = result.error_kind or exc.kind
            metrics.errors.labels(kind).inc()
            status = {"answer_too_large": 502, "capacity": 503}.get(kind, 500)
            detail = {"detail": str(exc)} if config.debug else {}
            return error_response(status, "the agent failed" if status == 500 else str(exc).splitlines()[0], request_id,
                                  **detail)
        if run.streaming:
            # style C: send the body as the agent produces it (server-sent events arrive one by one)
            response = web.StreamResponse(status=head.status)
            _copy_headers(head, response, request_id)
            await response.prepare(request)
            complete = False
            try:
                while isinstance(chunk := await run.chunks.get(), bytes):
                    await response.write(chunk)
                complete = chunk is None
            except ConnectionResetError:
                run.instance.cancel()  # the client left: abort the agent's request.signal
                metrics.errors.labels("client_disconnected").inc()
            if complete:
                result = await task
                await response.write_eof()
            else:
                # failed or too large after the head was sent: end the connection without the final
                # chunk, so the client sees a truncated answer, never a complete 200
                if request.transport is not None:
                    request.transport.close()
                result = await _finish_soon(task)
                if result is None:
                    return response
        else:
            result = await task
            response = web.Response(status=head.status, body=head.body)
            _copy_headers(head, response, request_id)
        if result.error:
            metrics.errors.labels(result.error_kind or "error").inc()
        return response
    finally:
        watcher.cancel()
        if task.done():
            await _store_run_logs(app, cid, request_id, log_entries, task, started)
        else:  # the agent outlives its client: keep its logs when it ends (within its own limits)
            pending = asyncio.create_task(_store_run_logs(app, cid, request_id, log_entries, task, started))
            app[BACKGROUND].add(pending)
            pending.add_done_callback(app[BACKGROUND].discard)


async def _finish_soon(task: asyncio.Task):
    """The task's result if it ends within the grace period, else None (it runs on)."""
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout=DISCONNECT_GRACE)
    except asyncio.TimeoutError:
        return None


async def _store_run_logs(app: web.Application, cid: str, request_id: str, entries: list,
                          task: asyncio.Task, started: float) -> None:
    metrics = app[METRICS]
    try:
        result = await task
        entries += [(rec.level, rec.message, rec.time) for rec in result.logs]
    except Exception:
        log.exception("agent run %s failed in the host", request_id)
    finally:
        metrics.live.dec()
        duration = time.monotonic() - started
        metrics.run_seconds.observe(duration)
    entries.append(("END", f"Request: Duration: {duration * 1000:.0f} ms", time.time()))
    await app[LOGS].write(cid, request_id, entries)


class _DisconnectWatch:
    """aiohttp keeps running a handler whose client left: notice it and tell the agent. It polls
    the transport with a timer (cheaper than a task: most runs end before the first check)."""

    def __init__(self, request: web.Request, run: AgentRun) -> None:
        self._request, self._run = request, run
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(DISCONNECT_POLL, self._check)

    def _check(self) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            self._run.instance.cancel()
        else:
            self._handle = self._loop.call_later(DISCONNECT_POLL, self._check)

    def cancel(self) -> None:
        self._handle.cancel()


def _copy_headers(head, response: web.StreamResponse, request_id: str) -> None:
    for name, value in head.headers:
        if name.lower() not in HOP_BY_HOP:
            response.headers.add(name, value)
    response.headers[REQUEST_ID_HEADER] = request_id


# --- vaults -------------------------------------------------------------------------

async def create_vault(request: web.Request) -> web.Response:
    request_id, store = request[REQUEST_ID], request.app[STORE]
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "the body must be JSON: {\"cid\": ..., \"data\": {...}, \"inherit\"?: key}",
                              request_id, succeed=False)
    if not isinstance(body, dict) or not isinstance(body.get("cid"), str) or not isinstance(body.get("data"), dict):
        return error_response(400, "expected {\"cid\": string, \"data\": object, \"inherit\"?: key}", request_id,
                              succeed=False)
    inherit = body.get("inherit")
    if inherit is not None and not isinstance(inherit, str):
        return error_response(400, "inherit must be a vault key (string)", request_id, succeed=False)
    try:
        cid = parse_cid(body["cid"]).v0
        key, token = await asyncio.to_thread(store.create_vault, cid, body["data"], inherit or None)
    except InvalidCID as exc:
        return error_response(400, f"malformed CID: {exc}", request_id, succeed=False)
    except VaultForbidden:
        return error_response(403, "the inherited vault belongs to another CID", request_id, succeed=False)
    except VaultNotFound:
        return error_response(404, "the inherited vault does not exist", request_id, succeed=False)
    except ValueError as exc:
        return error_response(400, str(exc), request_id, succeed=False)
    return web.json_response({"token": token, "key": key, "succeed": True})


async def get_vault(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        vault = await asyncio.to_thread(store.get_vault, request.match_info["key"], request.match_info["token"])
    except VaultNotFound:
        return web.json_response({"succeed": False, "error": "not found"}, status=404)
    return web.json_response({"data": vault["data"], "inherit": vault["inherit"], "succeed": True})


# --- logs ---------------------------------------------------------------------------

async def get_logs(request: web.Request) -> web.Response:
    request_id, store = request[REQUEST_ID], request.app[STORE]
    try:
        cid = parse_cid(request.match_info["cid"]).v0
    except InvalidCID as exc:
        return error_response(400, f"malformed CID: {exc}", request_id)
    q = request.query
    fmt = q.get("format", "text")
    if fmt not in ("text", "json"):
        return error_response(400, "format must be text or json", request_id)
    try:
        page, limit = int(q.get("page", "1")), int(q.get("limit", "100"))
        records = await asyncio.to_thread(store.query_logs, cid, q.get("requestId") or None, page, limit)
    except ValueError as exc:
        return error_response(400, f"bad paging: {exc}", request_id)
    if fmt == "json":
        return web.json_response({"logs": [r.as_dict() for r in records], "page": page, "limit": limit})
    return web.Response(text=format_text(records), content_type="text/plain")


# --- health and metrics ----------------------------------------------------------------

async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def metrics_endpoint(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": content_type})


def make_app(config: GatewayConfig, store: Store | None = None) -> web.Application:
    data_dir = config.data_dir or default_data_dir()
    config = config.with_(data_dir=Path(data_dir))
    app = web.Application(middlewares=[request_id_middleware], client_max_size=config.max_request_body)
    app[CONFIG] = config
    app[STORE] = store or Store(config.data_dir, log_retention=LogRetention(
        max_per_cid=config.log_max_per_cid, max_age=config.log_max_age or None))
    app[METRICS] = Metrics()
    app[LOGS] = LogWriter(app[STORE])
    app[CODE_CACHE] = {}
    app[BACKGROUND] = set()
    app[NETWORK] = config.network()
    if config.ws_max_message is not None:
        from ..host.net.websocket import set_max_message_size
        set_max_message_size(config.ws_max_message)

    async def flush_logs(app: web.Application) -> None:
        if app[BACKGROUND]:
            await asyncio.wait(list(app[BACKGROUND]), timeout=DISCONNECT_GRACE)
        await app[LOGS].close()

    app.on_cleanup.append(flush_logs)
    app.router.add_route("*", "/ipfs/{cid}", handle_agent)
    app.router.add_route("*", "/ipfs/{cid}/{path:.*}", handle_agent)
    app.router.add_post("/vaults", create_vault)
    app.router.add_get("/vaults/{key}/{token}", get_vault)
    app.router.add_get("/logs/all/ipfs/{cid}", get_logs)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_endpoint)
    # long-running apps: /app/<id>/..., /apps (wapo.gateway.apps)
    from .apps import supervisor as apps, proxy as apps_proxy
    runs_apps = apps.install(app)
    if not runs_apps:  # a --workers child: the first process runs the apps, this one forwards to it
        apps_proxy.install_forwarding(app, apps_proxy.socket_path(config))
    for method, path, handler in apps.ROUTES:
        app.router.add_route(method, path, handler if runs_apps else apps_proxy.forward)
    return app
