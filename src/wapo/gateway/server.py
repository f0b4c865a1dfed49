"""Running the gateway: one process, or N worker processes sharing the port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..paths import default_data_dir
from ..store import Store
from .context import REQUEST_ID_HEADER, error_response, new_request_id
from .app import make_app
from .apps.proxy import socket_path
from .config import GatewayConfig


class _RequestHandler(RequestHandler):
    """aiohttp's connection handler, whose own answers (a 400 for a request it cannot parse, which
    never reaches the app's middleware) are JSON with an X-Request-Id like every other answer."""

    def handle_error(self, request, status=500, exc=None, message=None):  # type: ignore[no-untyped-def]
        text = super().handle_error(request, status, exc, message)
        request_id = text.headers.get(REQUEST_ID_HEADER) or new_request_id()
        response = error_response(status, (text.text or "").strip() or "error", request_id)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _RequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` with the handler above (aiohttp offers no hook for its error answers)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state, one method more
        return server


async def serve_forever(config: GatewayConfig, *, reuse_port: bool, ready=None) -> None:
    app = make_app(config)
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_port=reuse_port, backlog=1024)
    await site.start()
    if config.workers > 1 and multiprocessing.parent_process() is None:
        await _serve_apps_socket(runner, config)
    if ready is not None:
        ready()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if config.workers > 1 and multiprocessing.parent_process() is None:
            socket_path(config).unlink(missing_ok=True)


async def _serve_apps_socket(runner: web.AppRunner, config: GatewayConfig) -> None:
    """The first process also answers on a Unix socket, where the other workers forward app requests."""
    path = socket_path(config)
    path.unlink(missing_ok=True)  # left by a gateway that was killed
    old_umask = os.umask(0o177)  # created 0600: only this user's processes may connect
    try:
        await web.UnixSite(runner, str(path)).start()
    finally:
        os.umask(old_umask)


def deploy_config_apps(config: GatewayConfig) -> None:
    """Deploy the config file's ``[app.<id>]`` entries (SystemExit with the reason if one cannot be)."""
    if not config.apps:
        return
    from ..store.apps import AppRecordError, AppRecords
    records = AppRecords(config.data_dir or default_data_dir())
    for entry in config.apps:
        try:
            records.deploy(entry.file, entry.id, on_demand=entry.on_demand, listen=entry.listen)
        except AppRecordError as exc:
            sys.exit(f"wapo serve: config app {entry.id!r}: {exc}")


def _worker(config: GatewayConfig) -> None:
    try:
        asyncio.run(serve_forever(config, reuse_port=True))
    except KeyboardInterrupt:
        pass


def run_server(config: GatewayConfig, ready=None) -> None:
    """Serve until SIGINT/SIGTERM; with workers > 1 the other processes are started first."""
    Store(config.data_dir).close()  # create the data directory and schema once, before the workers race
    deploy_config_apps(config)
    children = []
    if config.workers > 1:
        if not hasattr(__import__("socket"), "SO_REUSEPORT"):
            sys.exit("wapo serve: --workers needs SO_REUSEPORT, which this system lacks")
        ctx = multiprocessing.get_context("spawn")
        for _ in range(config.workers - 1):
            child = ctx.Process(target=_worker, args=(config,), daemon=True)
            child.start()
            children.append(child)
    try:
        asyncio.run(serve_forever(config, reuse_port=config.workers > 1, ready=ready))
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(timeout=5)
