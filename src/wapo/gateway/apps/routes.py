"""The gateway's routes to long-running apps (listed in ``supervisor``'s docstring), answered by the
first process's ``AppManager``."""

from __future__ import annotations

import asyncio
import multiprocessing

from aiohttp import web

from ...host.apps import AppNotAnswering, QueryFailed, send_query as app_query, serve_request
from ..logs import logs_answer
from ..context import CONFIG, LOGS, NETWORK, REQUEST_ID, REQUEST_ID_HEADER, error_response, read_body
from .supervisor import ANSWER_TIMEOUT, AppManager, AppUnavailable, ManagedApp

# --- the gateway side ---------------------------------------------------------------------------------

APPS = web.AppKey("apps", object)


def install(app: web.Application) -> bool:
    """Create the manager (in the first gateway process only) and start/stop it with the app.
    False in a ``--workers`` child: apps live in the first process (see ``apps_proxy``)."""
    config = app[CONFIG]
    if multiprocessing.parent_process() is not None:
        app[APPS] = None
        return False
    manager = AppManager(config.data_dir, limits=config.limits, network=app[NETWORK], logs=app[LOGS])
    app[APPS] = manager

    async def start(app: web.Application) -> None:
        await manager.start()

    async def stop(app: web.Application) -> None:
        await manager.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return True


def _manager(request: web.Request) -> AppManager:
    manager = request.app[APPS]
    if manager is None:
        raise web.HTTPServiceUnavailable(text="apps run in the gateway's first process: use --workers 1")
    return manager  # type: ignore[return-value]


def _lookup(request: web.Request) -> ManagedApp | web.Response:
    app_id = request.match_info["id"]
    managed = _manager(request).apps.get(app_id)
    if managed is None:
        return error_response(404, f"no app {app_id!r} (deploy it with `wapo deploy`)", request[REQUEST_ID])
    return managed


async def handle_app_http(request: web.Request) -> web.StreamResponse:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    request_id = request[REQUEST_ID]
    url = "/" + request.match_info.get("path", "")
    if request.query_string:
        url += "?" + request.query_string

    def fail(status: int, message: str) -> web.Response:
        return error_response(status, f"app {managed.id} {message}", request_id)

    try:
        async with managed.session(request_id) as instance:
            return await serve_request(request, instance, url, fail=fail, timeout=ANSWER_TIMEOUT,
                                       extra_headers=[(REQUEST_ID_HEADER, request_id)])
    except AppUnavailable as exc:
        return error_response(503, str(exc), request_id)


async def handle_app_query(request: web.Request) -> web.Response:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    request_id, config = request[REQUEST_ID], request.app[CONFIG]
    origin = None
    if "X-Wapo-Origin" in request.headers:
        try:
            origin = bytes.fromhex(request.headers["X-Wapo-Origin"])
            if len(origin) != 32:
                raise ValueError
        except ValueError:
            return error_response(400, "X-Wapo-Origin must be 64 hex digits (32 bytes)", request_id)
    try:
        payload = await read_body(request, config.max_request_body)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"request body over {config.max_request_body} bytes", request_id)
    try:
        async with managed.session(request_id) as instance:
            reply = await app_query(instance, request.match_info.get("path", ""), payload, origin,
                                    timeout=ANSWER_TIMEOUT)
    except AppUnavailable as exc:
        return error_response(503, str(exc), request_id)
    except QueryFailed as exc:
        return error_response(500, "the app answered the query with an error", request_id, appError=str(exc))
    except AppNotAnswering as exc:
        return error_response(502, f"app {managed.id} did not answer: {exc}", request_id)
    except asyncio.TimeoutError:
        return error_response(504, f"app {managed.id} did not answer within {ANSWER_TIMEOUT:g} s", request_id)
    return web.Response(body=reply, content_type="application/octet-stream")


async def handle_app_status(request: web.Request) -> web.Response:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    return web.json_response(managed.status())


async def _change_state(request: web.Request, start: bool) -> web.Response:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    manager = _manager(request)
    await (manager.start_app(managed) if start else manager.stop_app(managed))
    return web.json_response(managed.status())


async def handle_app_stop(request: web.Request) -> web.Response:
    return await _change_state(request, start=False)


async def handle_app_start(request: web.Request) -> web.Response:
    return await _change_state(request, start=True)


async def handle_apps_list(request: web.Request) -> web.Response:
    manager = _manager(request)
    return web.json_response({"apps": [m.status() for m in manager.apps.values()]})


async def handle_apps_reload(request: web.Request) -> web.Response:
    ids = await _manager(request).reload()
    return web.json_response({"apps": ids})


async def handle_app_logs(request: web.Request) -> web.Response:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    return await logs_answer(request, managed.id)


# registered in this order (the first match wins; an app's own POST .../stop or .../query/... is shadowed)
ROUTES = [
    ("GET", "/apps", handle_apps_list),
    ("POST", "/apps/reload", handle_apps_reload),
    ("GET", "/apps/{id}/logs", handle_app_logs),
    ("GET", "/app/{id}", handle_app_status),
    ("POST", "/app/{id}/stop", handle_app_stop),
    ("POST", "/app/{id}/start", handle_app_start),
    ("POST", "/app/{id}/query/{path:.*}", handle_app_query),
    ("*", "/app/{id}/{path:.*}", handle_app_http),
]
